// The `deckhand` executable: everything lives in DeckhandCLI.
import ArgumentParser
import DeckhandCLI
import Dispatch
import NIOCore
import NIOPosix

@main
enum DeckhandMain {
  static func main() {
    // NIO's event loops run Swift concurrency too, so that a call to a
    // plugin resumes its caller on the thread that read the answer.
    _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    Task {
      await DeckhandCommand.main(nil)
      exit(0)
    }
    dispatchMain()
  }
}
