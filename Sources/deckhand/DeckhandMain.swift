// The `deckhand` executable: everything lives in DeckhandCLI.
import ArgumentParser
import DeckhandCLI
import DeckhandGRPC
import NIOCore
import NIOPosix

@main
enum DeckhandMain {
  static func main() {
    // NIO's event loops run Swift concurrency too, so that a call to a
    // plugin resumes its caller on the thread that read the answer (in a
    // build with the Swift runtime linked in statically too).
    _ = EventLoopExecutor.install()
    Task {
      await DeckhandCommand.main(nil)
      exit(0)
    }
    MainQueue.serve()
  }
}
