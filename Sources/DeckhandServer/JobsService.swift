package import DeckhandCore
internal import DeckhandProtocol
internal import DeckhandRuntime
internal import DeckhandTelemetry
internal import Foundation
internal import GRPCCore
internal import SwiftProtobuf
internal import Synchronization

/// `deckhand.server.v1.Jobs`: the job queue for operators (operator token)
/// and runners (joined agents, by their node credential).
struct JobsService: Deckhand_Server_V1_Jobs.ServiceProtocol {
  let plane: ControlPlane
  let queue: JobQueue
  let relay: ExecRelay

  /// The API and runner protocol versions.
  static let apiVersion: UInt32 = 1
  static let runnerVersion: UInt32 = 1

  private func runner(_ metadata: Metadata) async throws -> String {
    let principal = try await plane.authenticate(metadata.authorization)
    guard case .node(let id) = principal else {
      throw DeckhandError(.permissionDenied, "only a joined agent can be a runner, not a \(principal.role)")
    }
    return id
  }

  /// A call of `access` (``Principal/may(_:)`` says who may make it).
  private func unary<Request, Response>(
    _ request: ServerRequest<Request>, _ access: Principal.Access, _ body: (Request) async throws -> Response
  ) async throws -> ServerResponse<Response> {
    try await mappingErrors {
      try await plane.authorize(request.metadata.authorization, for: access)
      return ServerResponse(message: try await body(request.message))
    }
  }

  func getVersionInfo(request: ServerRequest<Deckhand_Server_V1_GetVersionInfoRequest>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Server_V1_VersionInfo>
  {
    var info = Deckhand_Server_V1_VersionInfo()
    info.api.current = Self.apiVersion
    info.api.minimum = 1
    info.runner.current = Self.runnerVersion
    info.runner.minimum = 1
    info.version = DeckhandVersion.current
    return ServerResponse(message: info)
  }

  func queueJob(request: ServerRequest<Deckhand_Server_V1_QueueJobRequest>, context: ServerContext) async throws
    -> ServerResponse<Deckhand_Server_V1_QueueJobResponse>
  {
    try await unary(request, .operate) { message in
      var response = Deckhand_Server_V1_QueueJobResponse()
      // The trace that queued the job is the server's to record: whatever
      // the client put in its place is dropped.
      var job = message.job
      job.traceContext = TraceCarrier.current()
      let queued = try await queue.queueWithWarning(job)
      response.jobID = queued.id
      response.warning = queued.warning ?? ""
      return response
    }
  }

  func cancelJob(request: ServerRequest<Deckhand_Server_V1_CancelJobRequest>, context: ServerContext) async throws
    -> ServerResponse<Deckhand_Server_V1_CancelJobResponse>
  {
    try await unary(request, .operate) { message in
      try await queue.cancel(message.jobID, force: message.force)
      return Deckhand_Server_V1_CancelJobResponse()
    }
  }

  func getJob(request: ServerRequest<Deckhand_Server_V1_GetJobRequest>, context: ServerContext) async throws
    -> ServerResponse<Deckhand_Server_V1_Job>
  {
    try await unary(request, .read) { message in queue.message(try await queue.record(message.jobID)) }
  }

  func listJobs(request: ServerRequest<Deckhand_Server_V1_ListJobsRequest>, context: ServerContext) async throws
    -> ServerResponse<Deckhand_Server_V1_ListJobsResponse>
  {
    try await unary(request, .read) { message in
      var runner: String?
      if !message.runnerID.isEmpty {
        // A removed node's jobs are still listed by its id.
        var node = try await plane.store.node(id: message.runnerID)
        if node == nil { node = try await plane.store.node(named: message.runnerID) }
        runner = node?.id ?? message.runnerID
      }
      let records = try await queue.store.jobs(
        states: message.states.map(\.rawValue), runner: runner, since: message.sinceMs, limit: Int(message.limit))
      var response = Deckhand_Server_V1_ListJobsResponse()
      response.jobs = records.filter { record in
        message.labels.allSatisfy { record.targetLabels[$0.key] == $0.value }
      }.map(queue.message)
      return response
    }
  }

  func validateJob(request: ServerRequest<Deckhand_Server_V1_ValidateJobRequest>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Server_V1_ValidateJobResponse>
  {
    try await unary(request, .read) { message in
      var response = Deckhand_Server_V1_ValidateJobResponse()
      do {
        try queue.validate(message.job)
        response.valid = true
        response.assignable = (try? await queue.assignable(message.job)) ?? false
      } catch let error as DeckhandError {
        response.validationError = error.message
      }
      return response
    }
  }

  func pruneOldJobs(request: ServerRequest<Deckhand_Server_V1_PruneOldJobsRequest>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Server_V1_PruneOldJobsResponse>
  {
    try await unary(request, .operate) { message in
      var response = Deckhand_Server_V1_PruneOldJobsResponse()
      response.pruned = Int64(try await queue.store.prune(endedBefore: nowMs() - message.olderThanMs))
      return response
    }
  }

  func setConfig(request: ServerRequest<Deckhand_Server_V1_SetConfigRequest>, context: ServerContext) async throws
    -> ServerResponse<Deckhand_Server_V1_SetConfigResponse>
  {
    try await unary(request, .operate) { message in
      try await queue.setConfig(message.variables)
      return Deckhand_Server_V1_SetConfigResponse()
    }
  }

  func getConfig(request: ServerRequest<Deckhand_Server_V1_GetConfigRequest>, context: ServerContext) async throws
    -> ServerResponse<Deckhand_Server_V1_GetConfigResponse>
  {
    try await unary(request, .operate) { message in
      var response = Deckhand_Server_V1_GetConfigResponse()
      response.variables = try await queue.config(prefix: message.prefix).filter { variable in
        !message.filterScope || (variable.scope == message.scope && variable.target == message.target)
      }
      return response
    }
  }

  func getJobStream(request: ServerRequest<Deckhand_Server_V1_GetJobStreamRequest>, context: ServerContext)
    async throws -> StreamingServerResponse<Deckhand_Server_V1_GetJobStreamResponse>
  {
    try await mappingErrors {
      try await plane.authorize(request.metadata.authorization, for: .read)
      let id = request.message.jobID
      let queue = self.queue
      let first = try await queue.record(id)
      return StreamingServerResponse { writer in
        var open = Deckhand_Server_V1_GetJobStreamResponse()
        open.open.job = queue.message(first)
        try await writer.write(open)
        try await queue.follow(id, from: first) { event in
          var message = Deckhand_Server_V1_GetJobStreamResponse()
          switch event {
          case .output(let records, let buffered):
            message.terminal.buffered = buffered
            message.terminal.events = records.map { record in
              var event = Deckhand_Server_V1_OutputEvent()
              event.kind = Deckhand_Server_V1_OutputEvent.Kind(rawValue: record.kind) ?? .line
              event.data = record.data
              event.timestampMs = record.timestampMs
              event.sequence = record.sequence
              return event
            }
          case .state(let previous, let job):
            message.state.previous = Deckhand_Server_V1_JobState(rawValue: previous.rawValue) ?? .unknown
            message.state.current = Deckhand_Server_V1_JobState(rawValue: job.state.rawValue) ?? .unknown
            message.state.job = queue.message(job)
          case .complete(let job):
            message.complete.job = queue.message(job)
            message.complete.exitCode = Int32(job.exitCode)
            message.complete.error = job.error
          }
          try await writer.write(message)
        }
        return [:]
      }
    }
  }

  func runnerConfig(request: ServerRequest<Deckhand_Server_V1_RunnerConfigRequest>, context: ServerContext)
    async throws -> StreamingServerResponse<Deckhand_Server_V1_RunnerConfigResponse>
  {
    try await mappingErrors {
      let runner = try await self.runner(request.metadata)
      queue.register(runner: runner, byIdOnly: request.message.byIDOnly)
      let queue = self.queue
      let plane = self.plane
      return StreamingServerResponse { writer in
        try await mappingErrors {
          try await plane.whileJoined(runner) {
            let (changes, token) = queue.changes.watch(.config)
            defer { queue.changes.unwatch(.config, token) }
            repeat {
              var message = Deckhand_Server_V1_RunnerConfigResponse()
              message.variables = try await queue.variables(
                for: try await queue.identity(of: runner), project: nil)
              try await writer.write(message)
            } while await changes.first(where: { _ in true }) != nil
            return [:]
          }
        }
      }
    }
  }

  func runnerJobStream(
    request: StreamingServerRequest<Deckhand_Server_V1_RunnerJobStreamRequest>, context: ServerContext
  ) async throws -> StreamingServerResponse<Deckhand_Server_V1_RunnerJobStreamResponse> {
    try await mappingErrors {
      let runner = try await self.runner(request.metadata)
      let queue = self.queue
      let plane = self.plane
      return StreamingServerResponse { writer in
        try await mappingErrors {
          try await plane.whileJoined(runner) {
            // The job this stream follows now, and one watcher per stream
            // that passes cancel requests for it on to the runner.
            let following = Following()
            let (changes, token) = queue.changes.watch(.cancel(runner: runner))
            defer { queue.changes.unwatch(.cancel(runner: runner), token) }
            try await withThrowingTaskGroup(of: Void.self) { group in
              group.addTask {
                await Self.passCancels(changes, runner: runner, following: following, queue: queue, writer: writer)
              }
              try await Self.serveRunner(
                runner, request: request, writer: writer, following: following, queue: queue)
              group.cancelAll()
            }
            return [:]
          }
        }
      }
    }
  }

  /// The runner's requests, one job at a time: a resumed job, or the next
  /// claimed, assigned and acknowledged; then its output to its end.
  static func serveRunner(
    _ runner: String, request: StreamingServerRequest<Deckhand_Server_V1_RunnerJobStreamRequest>,
    writer: RPCWriter<Deckhand_Server_V1_RunnerJobStreamResponse>, following: Following, queue: JobQueue
  ) async throws {
    var messages = request.messages.makeAsyncIterator()
    while let message = try await messages.next() {
      guard case .request(let ask) = message.event else {
        throw RPCError(code: .failedPrecondition, message: "expected a Request, got \(message)")
      }
      if !ask.resumeJobID.isEmpty {
        let id = ask.resumeJobID
        following.set(id)
        let resumable = try await mappingErrors { try await queue.resume(id, runner: runner) }
        var resumed = Deckhand_Server_V1_RunnerJobStreamResponse()
        resumed.resumed = .init()
        try await writer.write(resumed)
        if resumable {
          // A cancel may have come while the runner was away.
          queue.signal(.cancel(runner: runner))
        } else {
          // The job is over here: the runner stops its process, and its
          // result changes nothing. Its other slots go on.
          var cancel = Deckhand_Server_V1_RunnerJobStreamResponse()
          cancel.cancel.force = true
          try await writer.write(cancel)
        }
        try await Self.follow(
          id, runner: runner, queue: queue, messages: &messages, writer: writer, accepting: resumable)
      } else {
        let (job, identity) = try await queue.claim(for: runner)
        following.set(job.id)
        var assignment = Deckhand_Server_V1_RunnerJobStreamResponse()
        assignment.assignment.job = queue.message(job)
        for variable in try await queue.variables(for: identity, project: job.project.isEmpty ? nil : job.project) {
          assignment.assignment.env[variable.name] = variable.value
        }
        assignment.assignment.heartbeatIntervalMs = Int64(queue.timing.heartbeatInterval.inMilliseconds)
        do {
          try await writer.write(assignment)
          guard let answer = try await messages.next(), case .ack = answer.event else {
            await queue.requeue(job.id, runner: runner)
            throw RPCError(code: .failedPrecondition, message: "expected an Ack for job \(job.id)")
          }
        } catch {
          await queue.requeue(job.id, runner: runner)
          throw error
        }
        _ = try await queue.ack(job.id, runner: runner)
        try await Self.follow(
          job.id, runner: runner, queue: queue, messages: &messages, writer: writer, accepting: true)
      }
      following.set(nil)
    }
  }

  /// The job a runner's stream follows now.
  final class Following: Sendable {
    private let current = Mutex<String?>(nil)
    var id: String? { current.withLock { $0 } }
    func set(_ id: String?) { current.withLock { $0 = id } }
  }

  /// Sends Cancel to the runner when the job it runs is asked to stop, or
  /// ended without it (force-cancelled, timed out: then forced); once per
  /// job and kind.
  static func passCancels(
    _ changes: AsyncStream<Void>, runner: String, following: Following, queue: JobQueue,
    writer: RPCWriter<Deckhand_Server_V1_RunnerJobStreamResponse>
  ) async {
    var sent: (id: String, force: Bool)?
    while await changes.first(where: { _ in true }) != nil {
      guard let id = following.id, let job = try? await queue.record(id),
        job.cancelRequested || job.state.isEnded
      else { continue }
      let force = job.forceCancel || job.state.isEnded
      if let sent, sent.id == id, sent.force || !force { continue }
      var cancel = Deckhand_Server_V1_RunnerJobStreamResponse()
      cancel.cancel.force = force
      try? await writer.write(cancel)
      sent = (id, force)
    }
  }

  /// While the runner runs `id`: store its output and heartbeats
  /// (`accepting`; else drop them: the job is over here), end the job
  /// with its Complete or Error, and tell the runner it was handled
  /// (Finished).
  static func follow(
    _ id: String, runner: String, queue: JobQueue,
    messages: inout RPCAsyncSequence<Deckhand_Server_V1_RunnerJobStreamRequest, any Error>.AsyncIterator,
    writer: RPCWriter<Deckhand_Server_V1_RunnerJobStreamResponse>, accepting: Bool
  ) async throws {
    var accepting = accepting
    while let message = try await messages.next() {
      let recorded: Bool
      switch message.event {
      case .terminal(let terminal):
        if accepting, try await !queue.appendOutput(id, runner: runner, terminal.events) { accepting = false }
        continue
      case .heartbeat:
        if accepting { await queue.heartbeat(id) }
        continue
      case .complete(let complete):
        recorded = try await whileStorageFails {
          try await queue.finish(
            id, runner: runner, exitCode: complete.exitCode, error: nil, resultCode: complete.resultCode,
            results: complete.results)
        }
      case .error(let failure):
        recorded = try await whileStorageFails {
          try await queue.finish(id, runner: runner, exitCode: failure.exitCode, error: failure.message)
        }
      default:
        throw RPCError(code: .failedPrecondition, message: "unexpected \(message) while job \(id) runs")
      }
      var finished = Deckhand_Server_V1_RunnerJobStreamResponse()
      finished.finished.jobID = id
      finished.finished.recorded = recorded
      try await writer.write(finished)
      return
    }
  }

  /// `body`, tried again every second while the disk cannot take its
  /// write: a runner's result waits on its stream (the runner keeps it
  /// until Finished) instead of failing the stream, which the runner
  /// would open again at once.
  static func whileStorageFails<T>(_ body: () async throws -> T) async throws -> T {
    while true {
      do { return try await body() } catch  where StorageFailure.isStorageFailure(error) {
        try await Task.sleep(for: .seconds(1))
      }
    }
  }

  // MARK: Interactive exec

  func execStream(request: StreamingServerRequest<Deckhand_Server_V1_ExecStreamRequest>, context: ServerContext)
    async throws -> StreamingServerResponse<Deckhand_Server_V1_ExecStreamResponse>
  {
    try await mappingErrors {
      try await plane.authorize(request.metadata.authorization, for: .operate)
      let relay = self.relay
      let plane = self.plane
      return StreamingServerResponse { writer in
        var messages = request.messages.makeAsyncIterator()
        guard let first = try await messages.next(), case .start(let start) = first.event else {
          throw RPCError(code: .invalidArgument, message: "an exec stream starts with Start")
        }
        guard !start.argv.isEmpty else { throw RPCError(code: .invalidArgument, message: "exec needs a command") }
        let node = try await mappingErrors { try await plane.findNode(start.node) }
        let (id, pairing) = try await mappingErrors { try relay.open(node: node.id, start) }
        let answered = Following()
        var exited = false
        let operatorMessages = HandedOver(messages)
        try await withThrowingTaskGroup(of: Void.self) { group in
          // The operator's input and window sizes, on to the agent.
          group.addTask {
            var messages = operatorMessages.take()
            do {
              while let message = try await messages.next() {
                var out = Deckhand_Server_V1_RunnerExecStreamResponse()
                switch message.event {
                case .input(let input): out.input = input
                case .window(let window): out.window = window
                default: continue
                }
                pairing.agentSink.yield(out)
              }
            } catch {}
            var close = Deckhand_Server_V1_RunnerExecStreamResponse()
            close.input.close = true
            pairing.agentSink.yield(close)
          }
          // An agent that never answers within 15 s is given up on.
          group.addTask {
            try? await Task.sleep(for: .seconds(15))
            if !Task.isCancelled && answered.id == nil { relay.abandon(id) }
          }
          for await message in pairing.toOperator {
            answered.set(id)
            try await writer.write(message)
            if case .exit = message.event {
              exited = true
              break
            }
          }
          group.cancelAll()
        }
        pairing.agentSink.finish()
        if !exited {
          var exit = Deckhand_Server_V1_ExecStreamResponse()
          exit.exit.code = -1
          exit.exit.error = "the node's agent did not run the command (it went away or never answered)"
          try await writer.write(exit)
        }
        return [:]
      }
    }
  }

  func runnerExecControl(
    request: ServerRequest<Deckhand_Server_V1_RunnerExecControlRequest>, context: ServerContext
  ) async throws -> StreamingServerResponse<Deckhand_Server_V1_RunnerExecControlResponse> {
    try await mappingErrors {
      let node = try await runner(request.metadata)
      let relay = self.relay
      let plane = self.plane
      return StreamingServerResponse { writer in
        try await mappingErrors {
          try await plane.whileJoined(node) {
            let (requests, token) = relay.control(node: node)
            defer { relay.endControl(node: node, token) }
            for await request in requests { try await writer.write(request) }
            return [:]
          }
        }
      }
    }
  }

  func runnerExecStream(
    request: StreamingServerRequest<Deckhand_Server_V1_RunnerExecStreamRequest>, context: ServerContext
  ) async throws -> StreamingServerResponse<Deckhand_Server_V1_RunnerExecStreamResponse> {
    try await mappingErrors {
      let node = try await runner(request.metadata)
      let relay = self.relay
      let plane = self.plane
      return StreamingServerResponse { writer in
        try await mappingErrors {
          try await plane.whileJoined(node) {
            try await Self.relayExec(node, request: request, writer: writer, relay: relay)
          }
        }
      }
    }
  }

  /// One exec's agent stream: the operator's input and window sizes to
  /// the agent, the command's output and exit back.
  private static func relayExec(
    _ node: String, request: StreamingServerRequest<Deckhand_Server_V1_RunnerExecStreamRequest>,
    writer: RPCWriter<Deckhand_Server_V1_RunnerExecStreamResponse>, relay: ExecRelay
  ) async throws -> Metadata {
    var messages = request.messages.makeAsyncIterator()
    guard let first = try await messages.next(), case .open(let id) = first.event else {
      throw RPCError(code: .invalidArgument, message: "a runner exec stream starts with Open")
    }
    let pairing = try relay.attach(id, node: node)
    let agentMessages = HandedOver(messages)
    try await withThrowingTaskGroup(of: Void.self) { group in
      // The command's output and exit, on to the operator.
      group.addTask {
        var messages = agentMessages.take()
        do {
          while let message = try await messages.next() {
            var out = Deckhand_Server_V1_ExecStreamResponse()
            switch message.event {
            case .output(let output): out.output = output
            case .exit(let exit): out.exit = exit
            default: continue
            }
            pairing.operatorSink.yield(out)
          }
        } catch {}
        pairing.operatorSink.finish()
      }
      for await message in pairing.toAgent { try await writer.write(message) }
      try await group.waitForAll()
    }
    return [:]
  }
}
