internal import ArgumentParser
internal import DeckhandBenchmarks
internal import DeckhandCore
internal import Foundation

/// `deckhand-bench commands`: command-socket round trips beside the floor.
struct CommandsBenchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "commands",
    abstract: "Command-socket round trips (agent.status) with 1 and 16 clients, beside a bare unix-socket echo.",
    discussion: """
      Starts an agent (no plugins) on a throw-away state directory, unless --socket names a running one, \
      and an echo server that answers each connection with the bytes it got: the floor. Prints \
      `name value unit` lines.
      """
  )

  @Option(help: "A running agent's command socket; by default an agent is started for the run.")
  var socket: String?
  @Option(help: "Sequential requests for the 1-client figures.") var requests = 5000
  @Option(help: "Concurrent clients.") var clients = 16
  @Option(help: "Seconds of the concurrent phase.") var seconds = 3.0

  func run() async throws {
    var options = CommandSocketBenchmark.Options()
    options.requests = requests
    options.clients = clients
    options.duration = .nanoseconds(Int64(seconds * 1e9))
    DeckhandBench.header("command socket")
    try await CommandSocketBenchmark(options: options).run(
      socket: socket.map(DeckhandBench.absolute), report: DeckhandBench.report)
  }
}
