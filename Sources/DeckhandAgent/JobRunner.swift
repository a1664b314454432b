internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandPluginHost
internal import DeckhandProtocol
internal import DeckhandTelemetry
internal import Foundation
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
internal import Logging
internal import SwiftProtobuf
internal import Synchronization
internal import Tracing

/// The agent as a runner of the server's job queue: up to `slots` jobs at
/// a time, each slot pulling on a `RunnerJobStream` of its own (Request →
/// Assignment → Ack → output and heartbeats → Complete or Error), with the
/// config variables of `RunnerConfig` as the environment of exec jobs. A
/// job keeps running while the server is away; its output waits, and its
/// slot resumes it on the next stream.
final class JobRunner: Sendable {
  let membership: ServerMembership
  /// The replicas; the one to call is ``ServerList/current``.
  let servers: ServerList
  var endpoint: ServerEndpoint { servers.current }
  let manager: PluginManager
  let logger: Logger
  let metrics: AgentMetrics
  let timing = ControlPlaneTiming()
  /// Marks this agent's job processes.
  let owner: JobProcess.Owner
  /// Variables from RunnerConfig.
  private let variables = Mutex<[String: String]>([:])
  /// One per job that may run at once.
  private let slots: [Slot]
  /// Jobs to run as children of ``run()``: a job outlives the stream that
  /// brought it (it keeps running while the server is away).
  private let executions: AsyncStream<@Sendable () async -> Void>
  private let newExecution: AsyncStream<@Sendable () async -> Void>.Continuation

  /// A place for one job: the job running in it now, if any.
  final class Slot: Sendable {
    let current = Mutex<Execution?>(nil)
  }

  init(
    membership: ServerMembership, servers: ServerList, manager: PluginManager, slots: Int, owner: JobProcess.Owner,
    metrics: AgentMetrics = .off, logger: Logger
  ) {
    self.metrics = metrics
    self.membership = membership
    self.owner = owner
    self.servers = servers
    self.manager = manager
    self.slots = (0..<max(1, slots)).map { _ in Slot() }
    self.logger = logger
    (executions, newExecution) = AsyncStream.makeStream()
  }

  typealias Outgoing = AsyncStream<Deckhand_Server_V1_RunnerJobStreamRequest>.Continuation

  /// One job: its events go to the stream that is open now, or wait for
  /// the next one. Its result (the final Complete or Error) is kept until
  /// the server says it handled it (Finished): a result produced while the
  /// server was away, or sent on a stream that broke, is sent again on the
  /// next stream.
  final class Execution: Sendable {
    let id: String
    /// Output kept for the server while no stream is open; past it,
    /// output is dropped (and the drop said in the output).
    static let pendingOutputLimit = 16 << 20
    /// Output handed to an open stream but not yet written to it; past
    /// it, the job's output reader waits (and so, once its pipe is full,
    /// does the job): a job that prints faster than the server takes it
    /// does not grow the agent's memory.
    static let inFlightLimit = 4 << 20

    private struct State {
      var sink: Outgoing?
      var inFlight = 0
      var pending: [Deckhand_Server_V1_RunnerJobStreamRequest] = []
      var pendingBytes = 0
      var droppedBytes = 0
      var result: Deckhand_Server_V1_RunnerJobStreamRequest?
      var cancel: (@Sendable (Bool) -> Void)?
    }
    private let state = Mutex(State())
    init(id: String) { self.id = id }

    func send(_ message: Deckhand_Server_V1_RunnerJobStreamRequest) {
      state.withLock { state in
        if let sink = state.sink, case .enqueued = sink.yield(message) {
          state.inFlight += Self.outputBytes(message)
          return
        }
        switch message.event {
        case .heartbeat:
          return  // the next stream's own heartbeats say the job still runs
        case .terminal:
          let bytes = Self.outputBytes(message)
          guard state.pendingBytes + bytes <= Self.pendingOutputLimit else {
            state.droppedBytes += bytes
            return
          }
          state.pendingBytes += bytes
        default:
          break
        }
        state.pending.append(message)
      }
    }

    /// The note for output dropped while the server was away.
    static func dropNote(_ bytes: Int) -> Deckhand_Server_V1_RunnerJobStreamRequest {
      var event = Deckhand_Server_V1_OutputEvent()
      event.kind = .stderr
      event.data = Data(
        ("[deckhand] \(ByteText.format(Int64(bytes))) of output dropped here: the server was away and the runner "
          + "keeps at most \(ByteText.format(Int64(pendingOutputLimit))) per job for it\n").utf8)
      event.timestampMs = Int64(Date().timeIntervalSince1970 * 1000)
      var message = Deckhand_Server_V1_RunnerJobStreamRequest()
      message.terminal.events = [event]
      return message
    }

    /// The job's result: sent now if a stream is open, and kept.
    func finish(_ result: Deckhand_Server_V1_RunnerJobStreamRequest) {
      state.withLock { state in
        state.result = result
        if let sink = state.sink { sink.yield(result) }
      }
    }

    /// Attaches a new stream and sends what waited, the result last.
    func attach(_ sink: Outgoing) {
      state.withLock { state in
        state.sink = sink
        for message in state.pending { sink.yield(message) }
        if state.droppedBytes > 0 { sink.yield(Self.dropNote(state.droppedBytes)) }
        state.pending = []
        state.pendingBytes = 0
        state.droppedBytes = 0
        if let result = state.result { sink.yield(result) }
      }
    }

    func detach() {
      state.withLock { state in
        state.sink = nil
        state.inFlight = 0
      }
    }

    /// `message` was written to the stream.
    func written(_ message: Deckhand_Server_V1_RunnerJobStreamRequest) {
      let bytes = Self.outputBytes(message)
      guard bytes > 0 else { return }
      state.withLock { $0.inFlight = max(0, $0.inFlight - bytes) }
    }

    /// Blocks the calling (output reader) thread while a stream is open
    /// and more than ``inFlightLimit`` of output waits to be written to it.
    func waitForRoom() {
      while state.withLock({ $0.sink != nil && $0.result == nil && $0.inFlight > Self.inFlightLimit }) {
        usleep(5_000)
      }
    }

    static func outputBytes(_ message: Deckhand_Server_V1_RunnerJobStreamRequest) -> Int {
      guard case .terminal(let terminal) = message.event else { return 0 }
      return terminal.events.reduce(0) { $0 + $1.data.count }
    }
    /// Whether the job ended here (its result may not have been handled).
    var ended: Bool { state.withLock { $0.result != nil } }
    func onCancel(_ body: @escaping @Sendable (Bool) -> Void) { state.withLock { $0.cancel = body } }
    func cancel(force: Bool) { state.withLock { $0.cancel }?(force) }
  }

  /// Keeps the runner streams open (reconnecting with backoff) and runs
  /// their jobs, all as child tasks, until cancelled; then ends the jobs
  /// that still run.
  func run() async {
    await withDiscardingTaskGroup { group in
      group.addTask {
        await self.keepStreams()
        for slot in self.slots { slot.current.withLock { $0 }?.cancel(force: true) }
        self.newExecution.finish()
      }
      for await execution in executions { group.addTask { await execution() } }
    }
  }

  private func keepStreams() async {
    await reconnecting(timing: timing) { connected in
      let endpoint = servers.current
      do {
        try await keepStreams(endpoint, connected: connected)
      } catch {
        logger.warning("runner stream ended: \(ControlPlaneClient.describe(error, endpoint: endpoint).message)")
        servers.failed(endpoint)
        throw error
      }
      return false
    } failed: { _ in
    }
  }

  private func keepStreams(_ endpoint: ServerEndpoint, connected: @escaping @Sendable () -> Void) async throws {
    try await ControlPlaneClient.withClient(endpoint, caPEM: membership.caPEM) { client in
      let jobs = Deckhand_Server_V1_Jobs.Client(wrapping: client)
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await self.followConfig(jobs) }
        group.addTask { try await self.followExecs(jobs) }
        for slot in self.slots {
          group.addTask { try await self.stream(jobs, slot: slot, connected: connected) }
        }
        try await group.next()
        group.cancelAll()
      }
    }
  }

  private func followConfig(_ jobs: Deckhand_Server_V1_Jobs.Client<HTTP2ClientTransport.Posix>) async throws {
    try await jobs.runnerConfig(
      Deckhand_Server_V1_RunnerConfigRequest(), metadata: ControlPlaneClient.metadata(membership.credential)
    ) { response in
      for try await message in response.messages {
        let values = Dictionary(message.variables.map { ($0.name, $0.value) }) { $1 }
        self.variables.withLock { $0 = values }
      }
    }
    try await Task.sleep(for: .seconds(3600 * 24 * 365))
  }

  /// Interactive execs: the server asks on the control stream; each runs
  /// on a stream of its own.
  private func followExecs(_ jobs: Deckhand_Server_V1_Jobs.Client<HTTP2ClientTransport.Posix>) async throws {
    try await jobs.runnerExecControl(
      Deckhand_Server_V1_RunnerExecControlRequest(), metadata: ControlPlaneClient.metadata(membership.credential)
    ) { response in
      try await withThrowingTaskGroup(of: Void.self) { group in
        for try await request in response.messages {
          group.addTask { await self.interactive(request, jobs) }
        }
      }
    }
    try await Task.sleep(for: .seconds(3600 * 24 * 365))
  }

  /// A command's environment: `passing` from the agent's own, then
  /// `defaults`, the config variables, and `overrides`, each winning over
  /// the ones before.
  private func commandEnvironment(
    passing names: Set<String>, defaults: [String: String] = [:], _ overrides: [String: String]
  ) -> [String: String] {
    var environment = ProcessInfo.processInfo.environment.filter { names.contains($0.key) }
    for (key, value) in defaults { environment[key] = value }
    for (key, value) in variables.withLock({ $0 }) { environment[key] = value }
    for (key, value) in overrides { environment[key] = value }
    return environment
  }

  /// One interactive exec: stdin and window sizes from the server, output
  /// and the exit code back.
  private func interactive(
    _ request: Deckhand_Server_V1_RunnerExecControlResponse,
    _ jobs: Deckhand_Server_V1_Jobs.Client<HTTP2ClientTransport.Posix>
  ) async {
    let start = request.start
    let (outgoing, sink) = AsyncStream.makeStream(of: Deckhand_Server_V1_RunnerExecStreamRequest.self)
    var open = Deckhand_Server_V1_RunnerExecStreamRequest()
    open.open = request.execID
    sink.yield(open)
    let environment = commandEnvironment(
      passing: ["PATH", "HOME", "LANG"], defaults: start.pty ? ["TERM": "xterm"] : [:], start.env)
    // nil: the command did not start; the stream carries only its exit.
    let process: JobProcess?
    do {
      process = try JobProcess.start(
        argv: start.argv, environment: environment, directory: nil,
        input: start.pty
          ? .terminal(rows: UInt16(clamping: start.window.rows), columns: UInt16(clamping: start.window.columns))
          : .pipe,
        owner: owner,
        onOutput: { chunk in
          var message = Deckhand_Server_V1_RunnerExecStreamRequest()
          message.output.stream = Int32(chunk.stream)
          message.output.data = Data(chunk.data)
          sink.yield(message)
        },
        onExit: { code in
          var message = Deckhand_Server_V1_RunnerExecStreamRequest()
          message.exit.code = code
          sink.yield(message)
          sink.finish()
        })
    } catch {
      var message = Deckhand_Server_V1_RunnerExecStreamRequest()
      message.exit.code = 127
      message.exit.error = (error as? DeckhandError)?.message ?? "\(error)"
      sink.yield(message)
      sink.finish()
      process = nil
    }
    do {
      try await jobs.runnerExecStream(
        metadata: ControlPlaneClient.metadata(membership.credential),
        requestProducer: { writer in for await message in outgoing { try await writer.write(message) } },
        onResponse: { response in
          guard let process else { return }
          for try await message in response.messages {
            switch message.event {
            case .input(let input):
              if !input.data.isEmpty { process.write(Array(input.data)) }
              if input.close { process.closeInput() }
            case .window(let window):
              process.resize(rows: UInt16(clamping: window.rows), columns: UInt16(clamping: window.columns))
            default:
              break
            }
          }
        })
    } catch {
      logger.warning("interactive exec \(request.execID) ended: \(error)")
    }
    // The operator went away: the command goes too, with everything it
    // started (SIGKILL after 5 s).
    if let process { await process.terminate(within: .seconds(5)) }
  }

  /// One slot's streams: a resume the server refuses (the job is not
  /// this runner's any more) stops that slot's job and opens the slot's
  /// stream again, without ending the runner's other streams.
  private func stream(
    _ jobs: Deckhand_Server_V1_Jobs.Client<HTTP2ClientTransport.Posix>, slot: Slot,
    connected: @escaping @Sendable () -> Void
  ) async throws {
    while true {
      let asked = AskedResume()
      do {
        try await openStream(jobs, slot: slot, asked: asked, connected: connected)
        return
      } catch let error as RPCError where error.code == .invalidArgument {
        guard let id = asked.withLock({ $0 }) else { throw error }
        let dropped = slot.current.withLock { current -> Execution? in
          guard let execution = current, execution.id == id else { return nil }
          current = nil
          return execution
        }
        guard let dropped else { throw error }
        logger.warning("job \(id): the server refused to resume it (\(error.message)); stopping it here")
        dropped.cancel(force: true)
      }
    }
  }

  /// The job a slot's stream asked to resume, until the server answered
  /// Resumed (a class: the stream's escaping handler sets it).
  final class AskedResume: Sendable {
    private let id = Mutex<String?>(nil)
    func withLock<T>(_ body: (inout String?) -> T) -> T { id.withLock { body(&$0) } }
  }

  /// One RunnerJobStream of a slot; `asked` holds the job it asked to
  /// resume until the server answers Resumed.
  private func openStream(
    _ jobs: Deckhand_Server_V1_Jobs.Client<HTTP2ClientTransport.Posix>, slot: Slot, asked: AskedResume,
    connected: @escaping @Sendable () -> Void
  ) async throws {
    let (outgoing, sink) = AsyncStream.makeStream(of: Deckhand_Server_V1_RunnerJobStreamRequest.self)
    defer { slot.current.withLock { $0 }?.detach() }
    try await jobs.runnerJobStream(
      metadata: ControlPlaneClient.metadata(membership.credential),
      requestProducer: { writer in
        for await message in outgoing {
          try await writer.write(message)
          slot.current.withLock { $0 }?.written(message)
        }
      },
      onResponse: { response in
        connected()
        var ask = Deckhand_Server_V1_RunnerJobStreamRequest()
        ask.request = .init()
        // A job still running here, or one whose result the server has
        // not confirmed: resumed, and its result sent (again).
        if let current = slot.current.withLock({ $0 }) {
          ask.request.resumeJobID = current.id
          asked.withLock { $0 = current.id }
        }
        sink.yield(ask)
        for try await message in response.messages {
          switch message.event {
          case .resumed:
            asked.withLock { $0 = nil }
            slot.current.withLock { $0 }?.attach(sink)
          case .assignment(let assignment):
            var ack = Deckhand_Server_V1_RunnerJobStreamRequest()
            ack.ack = .init()
            sink.yield(ack)
            let execution = Execution(id: assignment.job.id)
            execution.attach(sink)
            slot.current.withLock { $0 = execution }
            self.newExecution.yield { await self.execute(assignment, execution) }
          case .cancel(let cancel):
            slot.current.withLock { $0 }?.cancel(force: cancel.force)
          case .finished(let finished):
            // The server has the result: the slot is free for the next job.
            let freed = slot.current.withLock { current -> Bool in
              guard let execution = current, execution.id == finished.jobID, execution.ended else { return false }
              current = nil
              return true
            }
            if !finished.recorded {
              self.logger.warning("job \(finished.jobID) had already ended on the server; its result here was dropped")
            }
            if freed {
              var next = Deckhand_Server_V1_RunnerJobStreamRequest()
              next.request = .init()
              sink.yield(next)
            }
          default:
            break
          }
        }
        sink.finish()
      })
  }

  /// Runs one job to its end; the slot asks for the next once the server
  /// has its result.
  private func execute(
    _ assignment: Deckhand_Server_V1_RunnerJobStreamResponse.Assignment, _ execution: Execution
  ) async {
    let job = assignment.job
    let interval = Duration.milliseconds(max(assignment.heartbeatIntervalMs, 100))
    metrics.jobStarted()
    defer { metrics.jobEnded() }
    let outcome = await withTaskGroup(of: Void.self) { group in
      group.addTask {
        while !Task.isCancelled {
          try? await Task.sleep(for: interval)
          if Task.isCancelled { return }
          var beat = Deckhand_Server_V1_RunnerJobStreamRequest()
          beat.heartbeat = .init()
          execution.send(beat)
        }
      }
      let outcome = await traced(job) { await perform(job, assignment, execution) }
      group.cancelAll()
      return outcome
    }
    // The slot stays taken until the server confirms the result
    // (Finished), on this stream or a later one.
    execution.finish(outcome)
  }

  /// Runs `body` in a span that continues the trace that queued `job`
  /// (its `trace_context`); a job queued outside a trace, or on a server
  /// that records none, runs without one.
  private func traced(
    _ job: Deckhand_Server_V1_Job, _ body: () async -> Deckhand_Server_V1_RunnerJobStreamRequest
  ) async -> Deckhand_Server_V1_RunnerJobStreamRequest {
    guard let parent = TraceCarrier.context(from: job.traceContext) else { return await body() }
    let operation =
      switch job.operation {
      case .exec: "exec"
      case .pluginApply: "plugin.apply"
      case .pluginStatus: "plugin.status"
      case .noop, nil: "noop"
      }
    return await withSpan("job \(operation)", context: parent, ofKind: .consumer) { span in
      span.attributes["deckhand.job.id"] = job.id
      let outcome = await body()
      if case .error(let error) = outcome.event {
        span.setStatus(SpanStatus(code: .error, message: error.message))
      }
      return outcome
    }
  }

  /// The job's operation, to its outcome.
  private func perform(
    _ job: Deckhand_Server_V1_Job, _ assignment: Deckhand_Server_V1_RunnerJobStreamResponse.Assignment,
    _ execution: Execution
  ) async -> Deckhand_Server_V1_RunnerJobStreamRequest {
    // Inside the job's span when it has one: JSON log lines carry its trace.
    logger.debug("running job", metadata: ["job": "\(job.id)"])
    let outcome: Deckhand_Server_V1_RunnerJobStreamRequest
    switch job.operation {
    case .exec(let exec):
      outcome = await runExec(exec, env: assignment.env, execution)
    case .pluginStatus(let status):
      outcome = await plugin(status.plugin) { connection, timeout in
        let answer = try await connection.getStatus(data: status.data.isEmpty ? nil : status.data, timeout: timeout)
        var complete = Deckhand_Server_V1_RunnerJobStreamRequest()
        complete.complete.resultCode = Int64(answer.code)
        complete.complete.results = answer.results
        return complete
      }
    case .pluginApply(let apply):
      outcome = await plugin(apply.plugin) { connection, timeout in
        try await connection.apply(apply.payload, timeout: timeout)
        var complete = Deckhand_Server_V1_RunnerJobStreamRequest()
        complete.complete = .init()
        return complete
      }
    case .noop, nil:
      var complete = Deckhand_Server_V1_RunnerJobStreamRequest()
      complete.complete = .init()
      outcome = complete
    }
    return outcome
  }

  private func plugin(
    _ name: String,
    _ body: @Sendable (any PluginConnection, Duration) async throws -> Deckhand_Server_V1_RunnerJobStreamRequest
  ) async -> Deckhand_Server_V1_RunnerJobStreamRequest {
    do {
      let entry = try await manager.entry(name)
      return try await entry.supervisor.withConnection { try await body($0, entry.manifest.timeouts.call) }
    } catch {
      var failure = Deckhand_Server_V1_RunnerJobStreamRequest()
      failure.error.message = (error as? DeckhandError)?.message ?? "\(error)"
      failure.error.exitCode = 1
      return failure
    }
  }

  /// An exec job: output in chunks of at most 64 KiB, sent as they come
  /// (several per message when they pile up); cancel is SIGTERM, then
  /// SIGKILL after 5 s (at once when forced); a timeout likewise. With
  /// `pty`, the command runs on an 80x24 pseudo-terminal (stdin, stdout
  /// and stderr), and its output arrives as stdout.
  private func runExec(
    _ exec: Deckhand_Server_V1_ExecOperation, env: [String: String], _ execution: Execution
  ) async -> Deckhand_Server_V1_RunnerJobStreamRequest {
    let environment = commandEnvironment(
      passing: ["PATH", "HOME", "LANG", "TERM"], defaults: exec.pty ? ["TERM": "xterm"] : [:],
      env.merging(exec.env) { $1 })
    let (exits, exited) = AsyncStream.makeStream(of: Int32.self)
    let reason = Mutex<String?>(nil)
    let process: JobProcess
    do {
      process = try JobProcess.start(
        argv: exec.argv, environment: environment,
        directory: exec.workingDirectory.isEmpty ? nil : exec.workingDirectory,
        input: exec.pty ? .terminal(rows: 24, columns: 80) : .none, owner: owner,
        onOutput: { chunk in
          var event = Deckhand_Server_V1_OutputEvent()
          event.kind = chunk.stream == 1 ? .stdout : .stderr
          event.data = Data(chunk.data)
          event.timestampMs = chunk.timestampMs
          var message = Deckhand_Server_V1_RunnerJobStreamRequest()
          message.terminal.events = [event]
          execution.waitForRoom()
          execution.send(message)
        },
        onExit: { code in
          exited.yield(code)
          exited.finish()
        })
    } catch {
      var failure = Deckhand_Server_V1_RunnerJobStreamRequest()
      failure.error.message = (error as? DeckhandError)?.message ?? "\(error)"
      failure.error.exitCode = 127
      return failure
    }
    // SIGTERM, then SIGKILL 5 s later; SIGKILL at once when forced. Each
    // reaches every process the job started.
    let (signals, sendSignal) = AsyncStream.makeStream(of: Int32.self)
    let stop: @Sendable (String, Bool) -> Void = { why, force in
      reason.withLock { $0 = $0 ?? why }
      sendSignal.yield(force ? SIGKILL : SIGTERM)
    }
    execution.onCancel { force in stop("cancelled", force) }
    var code: Int32 = -1
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        await withTaskGroup(of: Void.self) { killers in
          for await signal in signals {
            if signal == SIGTERM {
              killers.addTask { await process.terminate(within: .seconds(5)) }
            } else {
              await process.signal(signal)
            }
          }
          killers.cancelAll()
        }
      }
      if exec.timeoutMs > 0 {
        group.addTask {
          try? await Task.sleep(for: .milliseconds(exec.timeoutMs))
          if !Task.isCancelled { stop("timed out after \(exec.timeoutMs) ms", false) }
        }
      }
      for await exitCode in exits { code = exitCode }
      group.cancelAll()
    }
    sendSignal.finish()
    var message = Deckhand_Server_V1_RunnerJobStreamRequest()
    if let why = reason.withLock({ $0 }) {
      message.error.message = "\(why) (exit status \(code))"
      message.error.exitCode = code
    } else {
      message.complete.exitCode = code
    }
    return message
  }
}
