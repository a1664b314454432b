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
      Starts `deckhand server` on a throw-away state directory (and, with --store postgres, a throw-away \
      PostgreSQL cluster), joins N simulated agents in this process (each with its own session, assignments \
      stream and heartbeats), waits until all are READY, deploys a plugin to every node, holds for --duration \
      (the steady phase: server CPU per heartbeat), then upgrades the plugin on every node. With two CPUs or \
      more the server runs on CPU 0 and the simulated agents on CPU 1. Prints `name value unit` lines.
      """
  )

  @Option(help: "Simulated agents.") var agents = 1000
  @Option(help: "Seconds of the steady phase.") var duration = 30.0
  @Option(help: "Heartbeat period (the server's default is 5s).") var heartbeatPeriod = "5s"
  @Option(help: "The server's store: sqlite, or postgres (a throw-away cluster).") var store = "sqlite"
  @Option(help: "Nodes the upgrade replaces at once (0: all).") var upgradeParallelism = 0
  @Option(help: "The server's --max-heartbeats-per-second (default: the server's).") var maxHeartbeatsPerSecond: Int?
  @Flag(help: "Do not pin the server and the simulated agents to different CPUs.") var noPin = false
  @Flag(help: "Run the server with --metrics-listen, scraped every 5 s in the steady phase.") var metrics = false

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
    switch store {
    case "sqlite": options.postgres = false
    case "postgres": options.postgres = true
    default: throw ValidationError("--store \(store): expected sqlite or postgres")
    }
    guard upgradeParallelism >= 0 else {
      throw ValidationError("--upgrade-parallelism \(upgradeParallelism): expected 0 (all) or more")
    }
    options.upgradeParallelism = upgradeParallelism
    options.pin = !noPin
    options.metrics = metrics
    options.maxHeartbeatsPerSecond = maxHeartbeatsPerSecond
    DeckhandBench.header("dispatcher")
    try await DispatcherBenchmark(options: options).run(report: DeckhandBench.report)
  }
}
