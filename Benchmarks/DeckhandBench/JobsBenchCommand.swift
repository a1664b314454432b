internal import ArgumentParser
internal import DeckhandBenchmarks
internal import DeckhandCore
internal import Foundation

/// `deckhand-bench jobs`: job throughput through SQLite with real runners.
struct JobsBenchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "jobs",
    abstract:
      "Job throughput through SQLite or PostgreSQL (with replicas): no-op and short exec jobs for real runners, and output streaming.",
    discussion: """
      Starts `deckhand server` and --runners agents (child processes, each running up to --slots jobs at \
      once) on throw-away state directories, queues --jobs no-op jobs, then --jobs `true` exec jobs, then one job printing --output-mb MiB to a \
      reader of its stream. With --store postgres the state is in a throw-away PostgreSQL cluster; \
      --replicas N starts N servers on it, spreads the runners over them and queues through the first. \
      Prints `name value unit` lines.
      """
  )

  @Option(help: "Jobs per phase.") var jobs = 1000
  @Option(help: "Runners (agents).") var runners = 4
  @Option(help: "Jobs each runner runs at once (the agents' --job-slots).") var slots = 4
  @Option(help: "MiB printed by the output job.") var outputMb = 64
  @Option(help: "sqlite or postgres.") var store = "sqlite"
  @Option(help: "Server replicas (needs postgres).") var replicas = 1

  @Option(help: "The deckhand binary that runs the server and agents. Default: deckhand beside deckhand-bench.")
  var deckhand: String?

  func run() async throws {
    let executable = try DeckhandBench.deckhandExecutable(deckhand)
    var options = JobsBenchmark.Options(executable: executable)
    options.jobs = jobs
    options.runners = runners
    options.slots = slots
    options.outputMegabytes = outputMb
    guard ["sqlite", "postgres"].contains(store) else { throw ValidationError("--store: sqlite or postgres") }
    guard replicas >= 1, replicas == 1 || store == "postgres" else {
      throw ValidationError("--replicas N needs --store postgres")
    }
    options.postgres = store == "postgres"
    options.replicas = replicas
    DeckhandBench.header(store == "sqlite" ? "jobs" : "jobs (postgres, \(replicas) replica(s))")
    try await JobsBenchmark(options: options).run(report: DeckhandBench.report)
  }
}
