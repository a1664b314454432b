internal import ArgumentParser
internal import DeckhandAgent
internal import DeckhandCore
internal import DeckhandServer
internal import Foundation

/// `deckhand bench`: benchmarks of Deckhand's parts.
struct BenchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench",
    abstract: "Benchmarks. `deckhand plugin bench` measures plugin calls.",
    subcommands: [Commands.self, HostAPI.self, Dispatcher.self, JobQueue.self]
  )

  struct JobQueue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "jobs",
      abstract: "Job throughput through SQLite: no-op and short exec jobs for real runners, and output streaming.",
      discussion: """
        Starts `deckhand server` and --runners agents (child processes, each running up to --slots jobs at \
        once) on throw-away state directories, queues --jobs no-op jobs, then --jobs `true` exec jobs, then one job printing --output-mb MiB to a \
        reader of its stream. Prints `name value unit` lines.
        """
    )

    @Option(help: "Jobs per phase.") var jobs = 1000
    @Option(help: "Runners (agents).") var runners = 4
    @Option(help: "Jobs each runner runs at once (the agents' --job-slots).") var slots = 4
    @Option(help: "MiB printed by the output job.") var outputMb = 64

    func run() async throws {
      let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
      var options = JobsBenchmark.Options(executable: executable)
      options.jobs = jobs
      options.runners = runners
      options.slots = slots
      options.outputMegabytes = outputMb
      FileHandle.standardOutput.write(
        Data("# deckhand \(DeckhandVersion.current), jobs, \(ProcessInfo.processInfo.activeProcessorCount) cpus\n".utf8)
      )
      try await JobsBenchmark(options: options).run { figure in
        FileHandle.standardOutput.write(Data("\(figure)\n".utf8))
      }
    }
  }

  struct Dispatcher: AsyncParsableCommand {
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

    func run() async throws {
      let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
      var options = DispatcherBenchmark.Options(executable: executable)
      options.agents = agents
      options.duration = .nanoseconds(Int64(duration * 1e9))
      guard let period = DurationText.parse(heartbeatPeriod) else {
        throw ValidationError("--heartbeat-period \(heartbeatPeriod): expected a duration")
      }
      options.heartbeatPeriod = period
      FileHandle.standardOutput.write(
        Data(
          "# deckhand \(DeckhandVersion.current), dispatcher, \(ProcessInfo.processInfo.activeProcessorCount) cpus\n"
            .utf8))
      try await DispatcherBenchmark(options: options).run { figure in
        FileHandle.standardOutput.write(Data("\(figure)\n".utf8))
      }
    }
  }

  struct HostAPI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "hostapi",
      abstract: "Host API round trips (KV get/set, CallPlugin) with 1 and 16 callers, and launch cost of limits.",
      discussion: """
        Runs a plugin manager on a throw-away state directory with two copies of the echo example, calls \
        the Host API on one plugin's socket as that plugin would, then launches the echo example plain and \
        with limits and namespaces. Prints `name value unit` lines.
        """
    )

    @Option(help: "The echo plugin binary. Default: deckhand-example-echo beside this deckhand.")
    var plugin: String?
    @Option(help: "Sequential calls for each 1-caller figure.") var calls = 3000
    @Option(help: "Concurrent callers on one connection.") var callers = 16
    @Option(help: "Seconds of each concurrent phase.") var seconds = 2.0
    @Option(help: "Launches measured for plain and for contained.") var launches = 15

    func run() async throws {
      let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
      let sibling = executable.deletingLastPathComponent().appendingPathComponent("deckhand-example-echo").path
      var options = HostAPIBenchmark.Options(plugin: plugin.map(HostOptions.absolute) ?? sibling)
      options.calls = calls
      options.callers = callers
      options.duration = .nanoseconds(Int64(seconds * 1e9))
      options.launches = launches
      FileHandle.standardOutput.write(
        Data(
          "# deckhand \(DeckhandVersion.current), host api, \(ProcessInfo.processInfo.activeProcessorCount) cpus\n"
            .utf8))
      try await HostAPIBenchmark(options: options).run { figure in
        FileHandle.standardOutput.write(Data("\(figure)\n".utf8))
      }
    }
  }

  struct Commands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
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
      FileHandle.standardOutput.write(
        Data(
          "# deckhand \(DeckhandVersion.current), command socket, \(ProcessInfo.processInfo.activeProcessorCount) cpus\n"
            .utf8))
      try await CommandSocketBenchmark(options: options).run(socket: socket.map(HostOptions.absolute)) { figure in
        FileHandle.standardOutput.write(Data("\(figure)\n".utf8))
      }
    }
  }
}
