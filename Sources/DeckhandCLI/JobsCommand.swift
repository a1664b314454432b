internal import ArgumentParser
internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
internal import SwiftProtobuf
internal import Synchronization

/// `deckhand jobs run|apply|ls|get|watch|cancel|prune`.
struct JobsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "jobs", abstract: "Queue work for runners (agents) and follow it.",
    subcommands: [Run.self, Apply.self, List.self, Get.self, Watch.self, Cancel.self, Prune.self])

  typealias Client = Deckhand_Server_V1_Jobs.Client<HTTP2ClientTransport.Posix>

  /// Streams a job's output to stdout/stderr until it ends; returns it.
  /// Without output for a while, a progress line goes to stderr.
  static func follow(_ jobs: Client, _ metadata: Metadata, id: String, quiet: Bool) async throws
    -> Deckhand_Server_V1_Job
  {
    var request = Deckhand_Server_V1_GetJobStreamRequest()
    request.jobID = id
    let lastOutput = OutputClock()
    return try await withThrowingTaskGroup(of: Void.self) { group in
      if !quiet {
        group.addTask {
          while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(5))
            let quietFor = lastOutput.quietFor
            if !Task.isCancelled && quietFor >= .seconds(5) {
              FileHandle.standardError.write(
                Data("deckhand: job \(id) still running (\(Int(quietFor.inSeconds)) s without output)\n".utf8))
            }
          }
        }
      }
      let final = try await stream(jobs, metadata, request: request, quiet: quiet, lastOutput: lastOutput)
      group.cancelAll()
      return final
    }
  }

  private static func stream(
    _ jobs: Client, _ metadata: Metadata, request: Deckhand_Server_V1_GetJobStreamRequest, quiet: Bool,
    lastOutput: OutputClock
  ) async throws -> Deckhand_Server_V1_Job {
    let id = request.jobID
    return try await jobs.getJobStream(request, metadata: metadata) { response in
      var final = Deckhand_Server_V1_Job()
      for try await message in response.messages {
        switch message.event {
        case .terminal(let terminal):
          lastOutput.mark()
          for event in terminal.events {
            if event.kind == .stderr {
              FileHandle.standardError.write(event.data)
            } else {
              FileHandle.standardOutput.write(event.data)
            }
          }
        case .state(let state):
          if !quiet && state.current == .running {
            FileHandle.standardError.write(Data("deckhand: job \(id) running on \(state.job.runnerID)\n".utf8))
          }
        case .complete(let complete):
          final = complete.job
        default:
          break
        }
      }
      return final
    }
  }

  struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Queue an exec job: deckhand jobs run [--target RUNNER | --label k=v ...] [--wait] -- CMD ARGS")
    @OptionGroup var options: OperatorOptions
    @Option(help: "Only this runner (node id or name).") var target: String?
    @Option(name: .customLong("label"), help: "A label the runner must have, key=value; repeatable.")
    var labels: [String] = []
    @Option(name: .customLong("env"), help: "An environment variable, KEY=VALUE; repeatable.") var environment:
      [String] = []
    @Option(help: "Working directory on the runner.") var workdir: String?
    @Option(help: "Stop the command after this long (e.g. 30s).") var timeout: String?
    @Option(help: "Cancel the job if no runner took it within this long.") var expiresIn: String?
    @Option(help: "Replace a still-queued job with the same singleton id.") var singletonId: String?
    @Option(help: "The project, for config variables.") var project: String?
    @Flag(help: "Stream the output and exit with the job's exit code.") var wait = false
    @Flag(help: "Run the command on a pseudo-terminal (80x24): its output arrives as a terminal shows it.")
    var pty = false
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments, after --.") var command: [String] =
      []

    func run() async throws {
      // Before the "--", --help is a request for help, not the command
      // (passthrough parsing would take it as the first argument).
      if let first = command.first, first == "--help" || first == "-h" { throw CleanExit.helpRequest(self) }
      let argv = command.first == "--" ? Array(command.dropFirst()) : command
      guard !argv.isEmpty else {
        throw ValidationError("give the command after --, e.g. deckhand jobs run -- uname -a")
      }
      var job = Deckhand_Server_V1_Job()
      job.exec.argv = argv
      job.exec.env = try KeyValues.parse(environment, flag: "--env", emptyValues: false)
      if let workdir { job.exec.workingDirectory = workdir }
      job.exec.pty = pty
      if let timeout {
        guard let duration = DurationText.parse(timeout) else { throw ValidationError("--timeout \(timeout)") }
        job.exec.timeoutMs = Int64(duration.inMilliseconds)
      }
      if let expiresIn {
        guard let duration = DurationText.parse(expiresIn) else { throw ValidationError("--expires-in \(expiresIn)") }
        job.expiresInMs = Int64(duration.inMilliseconds)
      }
      if let target { job.target.runnerID = target } else { job.target.any = true }
      job.target.labels = try KeyValues.parse(labels, flag: "--label", emptyValues: false)
      job.singletonID = singletonId ?? ""
      job.project = project ?? ""
      try await JobsCommand.queue(job, options: options, wait: wait)
    }
  }

  struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract:
        "Queue a plugin.apply job: the runner calls the plugin's Apply with a payload. deckhand jobs apply PLUGIN [--value TEXT] [--wait]"
    )
    @OptionGroup var options: OperatorOptions
    @Argument(help: "The plugin on the runner.") var plugin: String
    @Option(help: "The payload: this text as a google.protobuf.StringValue.") var value = ""
    @Option(help: "Only this runner (node id or name).") var target: String?
    @Option(name: .customLong("label"), help: "A label the runner must have, key=value; repeatable.")
    var labels: [String] = []
    @Flag(help: "Wait for the job to end and exit 1 if it failed.") var wait = false

    func run() async throws {
      guard PluginName.isValid(plugin) else { throw ValidationError("\(plugin) is not a plugin name") }
      var job = Deckhand_Server_V1_Job()
      job.pluginApply.plugin = plugin
      job.pluginApply.payload = try Google_Protobuf_Any(message: Google_Protobuf_StringValue(value))
      if let target { job.target.runnerID = target } else { job.target.any = true }
      job.target.labels = try KeyValues.parse(labels, flag: "--label", emptyValues: false)
      try await JobsCommand.queue(job, options: options, wait: wait)
    }
  }

  /// Queues `job`, prints its id (or, with `wait`, follows it to its end)
  /// and exits with the job's exit code when it did not succeed.
  static func queue(_ job: Deckhand_Server_V1_Job, options: OperatorOptions, wait: Bool) async throws {
    let outcome: (id: String, job: Deckhand_Server_V1_Job?) = try await options.withJobs { jobs, metadata in
      var request = Deckhand_Server_V1_QueueJobRequest()
      request.job = job
      let queued = try await jobs.queueJob(request, metadata: metadata)
      let id = queued.jobID
      if !queued.warning.isEmpty {
        FileHandle.standardError.write(Data("deckhand: warning: \(queued.warning)\n".utf8))
      }
      guard wait else { return (id, nil) }
      if !options.json { FileHandle.standardError.write(Data("deckhand: job \(id) queued\n".utf8)) }
      return (id, try await follow(jobs, metadata, id: id, quiet: options.json))
    }
    if options.json {
      if let final = outcome.job {
        try options.printJSON([final], single: true)
      } else {
        print(#"{"id":"\#(outcome.id)"}"#)
      }
    } else if outcome.job == nil {
      print(outcome.id)
    }
    if let final = outcome.job {
      if final.state != .success {
        if !options.json {
          FileHandle.standardError.write(Data("deckhand: job \(outcome.id) ended in ERROR: \(final.error)\n".utf8))
        }
        throw ExitCode(final.exitCode != 0 ? final.exitCode : 1)
      }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List jobs, newest first.")
    @OptionGroup var options: OperatorOptions
    @Option(help: "Only this state (queued, waiting, running, success, error); repeatable.") var state: [String] = []
    @Option(help: "Only jobs of this runner.") var runner: String?
    @Option(help: "At most this many.") var limit = 100

    func run() async throws {
      var request = Deckhand_Server_V1_ListJobsRequest()
      for name in state {
        guard let value = ["queued": 1, "waiting": 2, "running": 3, "success": 4, "error": 5][name.lowercased()] else {
          throw ValidationError("--state \(name): one of queued, waiting, running, success, error")
        }
        request.states.append(Deckhand_Server_V1_JobState(rawValue: value) ?? .unknown)
      }
      request.runnerID = runner ?? ""
      request.limit = Int32(limit)
      let jobs = try await options.withJobs { jobs, metadata in
        try await jobs.listJobs(request, metadata: metadata).jobs
      }
      if options.json { return try options.printJSON(jobs) }
      print(
        TextTable.render(
          ["ID", "STATE", "RUNNER", "OPERATION", "QUEUED", "EXIT", "ERROR"],
          jobs.map {
            [
              $0.id, $0.state.displayName, $0.runnerID.isEmpty ? "-" : $0.runnerID, $0.operationSummary,
              TextTable.time($0.queuedMs), $0.completeMs > 0 ? "\($0.exitCode)" : "-", $0.error,
            ]
          }))
    }
  }

  struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one job.")
    @OptionGroup var options: OperatorOptions
    @Argument(help: "Job id.") var id: String

    func run() async throws {
      var request = Deckhand_Server_V1_GetJobRequest()
      request.jobID = id
      let job = try await options.withJobs { jobs, metadata in try await jobs.getJob(request, metadata: metadata) }
      if options.json { return try options.printJSON([job], single: true) }
      print("ID:        \(job.id)")
      print("State:     \(job.state.displayName)")
      print("Operation: \(job.operationSummary)")
      print("Runner:    \(job.runnerID.isEmpty ? "-" : job.runnerID)")
      print("Queued:    \(TextTable.time(job.queuedMs))")
      if job.completeMs > 0 { print("Ended:     \(TextTable.time(job.completeMs)), exit \(job.exitCode)") }
      if !job.error.isEmpty { print("Error:     \(job.error)") }
      if !job.results.isEmpty { print("Results:   \(job.resultCode) \(job.results.joined(separator: " | "))") }
    }
  }

  struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Print a job's output (stored, then live) until it ends; exit with its exit code.")
    @OptionGroup var options: OperatorOptions
    @Argument(help: "Job id.") var id: String

    func run() async throws {
      let job = try await options.withJobs { jobs, metadata in
        try await JobsCommand.follow(jobs, metadata, id: id, quiet: options.json)
      }
      if options.json { try options.printJSON([job], single: true) }
      if job.state != .success { throw ExitCode(job.exitCode != 0 ? job.exitCode : 1) }
    }
  }

  struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Cancel a job: a queued one ends at once, a running one is stopped by its runner.")
    @OptionGroup var options: OperatorOptions
    @Argument(help: "Job id.") var id: String
    @Flag(help: "Mark it ended at once, without waiting for the runner.") var force = false

    func run() async throws {
      var request = Deckhand_Server_V1_CancelJobRequest()
      request.jobID = id
      request.force = force
      _ = try await options.withJobs { jobs, metadata in try await jobs.cancelJob(request, metadata: metadata) }
      if !options.json { print("cancel requested for \(id)") }
    }
  }

  struct Prune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete ended jobs and their output.")
    @OptionGroup var options: OperatorOptions
    @Option(help: "Only jobs that ended longer ago than this (e.g. 24h).") var olderThan = "0s"

    func run() async throws {
      guard let age = DurationText.parse(olderThan) else { throw ValidationError("--older-than \(olderThan)") }
      var request = Deckhand_Server_V1_PruneOldJobsRequest()
      request.olderThanMs = Int64(age.inMilliseconds)
      let pruned = try await options.withJobs { jobs, metadata in
        try await jobs.pruneOldJobs(request, metadata: metadata)
      }
      if options.json { return try options.printJSON([pruned], single: true) }
      print("pruned \(pruned.pruned) jobs")
    }
  }
}

/// `deckhand config set|get|ls`: config variables.
struct ConfigCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "config", abstract: "Config variables: exec jobs see them as environment variables.",
    subcommands: [Set.self, Get.self, List.self])

  struct Scope: ParsableArguments {
    @Option(help: "server, project:NAME, target:NODE or runner:RUNNER (runner:* for every runner).")
    var scope = "server"

    func parsed() throws -> (Deckhand_Server_V1_ConfigVariable.Scope, String) {
      let parts = scope.split(separator: ":", maxSplits: 1).map(String.init)
      switch parts[0] {
      case "server": return (.server, "")
      case "project" where parts.count == 2: return (.project, parts[1])
      case "target" where parts.count == 2: return (.target, parts[1])
      case "runner" where parts.count == 2: return (.runner, parts[1])
      default: throw ValidationError("--scope \(scope): server, project:NAME, target:NODE or runner:RUNNER")
      }
    }
  }

  struct Set: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Set NAME=VALUE (an empty value deletes it).")
    @OptionGroup var options: OperatorOptions
    @OptionGroup var scope: Scope
    @Argument(help: "NAME=VALUE ...") var pairs: [String]

    func run() async throws {
      let (kind, target) = try scope.parsed()
      var request = Deckhand_Server_V1_SetConfigRequest()
      for pair in pairs {
        let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("\(pair): expected NAME=VALUE") }
        var variable = Deckhand_Server_V1_ConfigVariable()
        variable.scope = kind
        variable.target = target
        variable.name = parts[0]
        variable.value = parts[1]
        request.variables.append(variable)
      }
      _ = try await options.withJobs { jobs, metadata in try await jobs.setConfig(request, metadata: metadata) }
    }
  }

  static func show(_ variables: [Deckhand_Server_V1_ConfigVariable]) -> String {
    TextTable.render(
      ["SCOPE", "TARGET", "NAME", "VALUE"],
      variables.map { variable in
        let scope =
          switch variable.scope {
          case .project: "project"
          case .target: "target"
          case .runner: "runner"
          default: "server"
          }
        return [scope, variable.target.isEmpty ? "-" : variable.target, variable.name, variable.value]
      })
  }

  struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print one variable's value (exit 1 if unset).")
    @OptionGroup var options: OperatorOptions
    @OptionGroup var scope: Scope
    @Argument(help: "NAME") var name: String

    func run() async throws {
      let (kind, target) = try scope.parsed()
      var request = Deckhand_Server_V1_GetConfigRequest()
      request.prefix = name
      request.filterScope = true
      request.scope = kind
      request.target = target
      let variables = try await options.withJobs { jobs, metadata in
        try await jobs.getConfig(request, metadata: metadata).variables
      }.filter { $0.name == name }
      guard let variable = variables.first else { throw ExitCode(1) }
      if options.json { return try options.printJSON([variable], single: true) }
      print(variable.value)
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List variables by name prefix.")
    @OptionGroup var options: OperatorOptions
    @Option(help: "Only names that start with this.") var prefix = ""

    func run() async throws {
      var request = Deckhand_Server_V1_GetConfigRequest()
      request.prefix = prefix
      let variables = try await options.withJobs { jobs, metadata in
        try await jobs.getConfig(request, metadata: metadata).variables
      }
      if options.json { return try options.printJSON(variables) }
      print(ConfigCommand.show(variables))
    }
  }
}

/// When a job last printed something.
final class OutputClock: Sendable {
  private let last = Mutex(ContinuousClock.now)
  func mark() { last.withLock { $0 = .now } }
  var quietFor: Duration { last.withLock { $0 }.duration(to: .now) }
}
