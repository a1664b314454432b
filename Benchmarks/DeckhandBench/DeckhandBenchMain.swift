// The `deckhand-bench` executable: Deckhand's benchmarks, apart from the
// product (`deckhand plugin bench`, a plugin author's tool, stays in
// `deckhand`).
internal import ArgumentParser
internal import DeckhandGRPC
internal import Dispatch
internal import Foundation

@main
enum DeckhandBenchMain {
  static func main() {
    // As in `deckhand`: NIO's event loops run Swift concurrency, so what
    // runs in this process (the command-socket agent, Host API clients) is
    // measured as `deckhand` runs it.
    _ = EventLoopExecutor.install()
    Task {
      await DeckhandBench.main(nil)
      exit(0)
    }
    dispatchMain()
  }
}
