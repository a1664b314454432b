internal import ArgumentParser
internal import DeckhandBenchmarks
internal import DeckhandCore
internal import Foundation

/// `deckhand-bench dispatcher`: simulated agents against a real server.
struct DispatcherBenchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "dispatcher",
    abstract: "N simulated agents against a real deckhand server: CPU, memory, false DOWN, deployment reach.",
    discussion: """
      Starts `deckhand server` on a throw-away state directory, joins N simulated agents in this process \
      (each with its own session, assignments stream and heartbeats), waits until all are READY, deploys a \
      plugin to every node, then holds for --duration. Prints `name value unit` lines.
      """
  )

  @Option(help: "Simulated agents.") var agents = 1000
  @Option(help: "Seconds of the steady phase.") var duration = 30.0
  @Option(help: "Heartbeat period (the server's default is 5s).") var heartbeatPeriod = "5s"

  @Option(help: "The deckhand binary that runs the server and agents. Default: deckhand beside deckhand-bench.")
  var deckhand: String?

  func run() async throws {
    let executable = try DeckhandBench.deckhandExecutable(deckhand)
    var options = DispatcherBenchmark.Options(executable: executable)
    options.agents = agents
    options.duration = .nanoseconds(Int64(duration * 1e9))
    guard let period = DurationText.parse(heartbeatPeriod) else {
      throw ValidationError("--heartbeat-period \(heartbeatPeriod): expected a duration")
    }
    options.heartbeatPeriod = period
    DeckhandBench.header("dispatcher")
    try await DispatcherBenchmark(options: options).run(report: DeckhandBench.report)
  }
}
