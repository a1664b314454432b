import DeckhandClient
import DeckhandCore
import DeckhandProtocol
import DeckhandTestSupport
import Foundation
import GRPCCore
import Synchronization
import Testing

/// Every RPC of every service, called by each kind of caller: nobody, a
/// worker join token, another node, the node the request is about, an
/// operator, a viewer and an invite. The requests name node A's things (its session, task, job,
/// exec, artifact), so "another node" is node B reaching for them.
@Suite("Authorization: every RPC with every kind of credential", .serialized)
struct AuthorizationMatrixTests {
  enum Caller: String, CaseIterable, Sendable {
    case nobody, joinToken, otherNode, node, operatorToken, viewer, invite
  }

  /// What A owns and each caller's credential.
  struct Fleet: Sendable {
    let endpoint: ServerEndpoint
    let ca: String
    let credentials: [Caller: String]
    let nodeA: String
    let sessionA: String
    let taskA: String
    let jobA: String
    let digest: String
    /// The exec waiting for A's agent (set just before its row).
    var execA = ""

    func metadata(_ caller: Caller) -> Metadata {
      credentials[caller].map(ControlPlaneClient.metadata) ?? [:]
    }

    func withClient<R: Sendable>(_ body: (ControlPlaneClient.Client) async throws -> R) async throws -> R {
      try await ControlPlaneClient.withClient(endpoint, caPEM: ca, body)
    }
  }

  typealias Body = @Sendable (ControlPlaneClient.Client, Metadata, Caller, Fleet) async throws -> Void

  /// One row: an RPC and what each caller must get (nil: OK).
  struct Row: Sendable {
    let name: String
    let expected: [Caller: RPCError.Code?]
    let body: Body
  }

  static func operatorOnly(_ operatorOutcome: RPCError.Code? = nil) -> [Caller: RPCError.Code?] {
    [
      .nobody: .unauthenticated, .joinToken: .permissionDenied, .otherNode: .permissionDenied,
      .node: .permissionDenied, .operatorToken: operatorOutcome,
    ]
  }

  /// A call that only reads: operators and viewers.
  static func readable(_ outcome: RPCError.Code? = nil) -> [Caller: RPCError.Code?] {
    var expected = operatorOnly(outcome)
    expected[.viewer] = outcome
    return expected
  }

  static func nodeOnly(otherNode: RPCError.Code? = nil) -> [Caller: RPCError.Code?] {
    [
      .nobody: .unauthenticated, .joinToken: .permissionDenied, .otherNode: otherNode, .node: nil,
      .operatorToken: .permissionDenied,
    ]
  }

  static let everyone: [Caller: RPCError.Code?] = [
    .nobody: nil, .joinToken: nil, .otherNode: nil, .node: nil, .operatorToken: nil, .viewer: nil, .invite: nil,
  ]

  /// Throws the status a streaming response was refused with.
  static func accepted<M>(_ response: StreamingClientResponse<M>) throws {
    if case .failure(let error) = response.accepted { throw error }
  }

  /// The first message of a streaming response (nil if it ended at once).
  static func first<M>(_ response: StreamingClientResponse<M>) async throws -> M? {
    try accepted(response)
    for try await message in response.messages { return message }
    return nil
  }

  static let controlRows: [Row] = [
    Row(name: "Control.CreateToken", expected: operatorOnly()) { client, metadata, _, _ in
      var request = Deckhand_Control_V1_CreateTokenRequest()
      request.role = .worker
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).createToken(request, metadata: metadata)
    },
    Row(name: "Control.CreateInvite", expected: operatorOnly()) { client, metadata, _, _ in
      var request = Deckhand_Control_V1_CreateInviteRequest()
      request.role = .viewer
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).createInvite(request, metadata: metadata)
    },
    Row(name: "Control.CreateLoginToken", expected: readable()) { client, metadata, _, _ in
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).createLoginToken(.init(), metadata: metadata)
    },
    Row(name: "Control.ListTokens", expected: operatorOnly()) { client, metadata, _, _ in
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).listTokens(.init(), metadata: metadata)
    },
    Row(name: "Control.RevokeToken", expected: operatorOnly(.notFound)) { client, metadata, _, _ in
      var request = Deckhand_Control_V1_RevokeTokenRequest()
      request.id = "nonexistent"
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).revokeToken(request, metadata: metadata)
    },
    Row(name: "Control.ListNodes", expected: readable()) { client, metadata, _, _ in
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).listNodes(.init(), metadata: metadata)
    },
    Row(name: "Control.GetNode", expected: readable()) { client, metadata, _, fleet in
      var request = Deckhand_Control_V1_GetNodeRequest()
      request.node = fleet.nodeA
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).getNode(request, metadata: metadata)
    },
    Row(name: "Control.SetNodeLabels", expected: operatorOnly()) { client, metadata, _, _ in
      var request = Deckhand_Control_V1_SetNodeLabelsRequest()
      request.node = "matrix-b"
      request.set = ["matrix": "yes"]
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).setNodeLabels(request, metadata: metadata)
    },
    Row(name: "Control.SetNodeAvailability", expected: operatorOnly()) { client, metadata, _, _ in
      var request = Deckhand_Control_V1_SetNodeAvailabilityRequest()
      request.node = "matrix-b"
      request.availability = .active
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).setNodeAvailability(
        request, metadata: metadata)
    },
    Row(name: "Control.RemoveNode", expected: operatorOnly(.notFound)) { client, metadata, _, _ in
      var request = Deckhand_Control_V1_RemoveNodeRequest()
      request.node = "nonexistent"
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).removeNode(request, metadata: metadata)
    },
    Row(name: "Control.ListTasks", expected: readable()) { client, metadata, _, _ in
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).listTasks(.init(), metadata: metadata)
    },
    Row(name: "Control.CreateDeployment", expected: operatorOnly(.notFound)) { client, metadata, _, _ in
      var request = Deckhand_Control_V1_CreateDeploymentRequest()
      request.plugin = "echo"
      request.version = "9.9.9"
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).createDeployment(request, metadata: metadata)
    },
    Row(name: "Control.ListDeployments", expected: readable()) { client, metadata, _, _ in
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).listDeployments(.init(), metadata: metadata)
    },
    Row(name: "Control.GetDeployment", expected: readable(.notFound)) { client, metadata, _, _ in
      var request = Deckhand_Control_V1_GetDeploymentRequest()
      request.id = "nonexistent"
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).getDeployment(request, metadata: metadata)
    },
    Row(name: "Control.PushArtifact", expected: operatorOnly(.invalidArgument)) { client, metadata, _, _ in
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).pushArtifact(metadata: metadata) { writer in
        var chunk = Deckhand_Control_V1_PushArtifactChunk()
        chunk.data = Data("not a package".utf8)
        try await writer.write(chunk)
      }
    },
    Row(name: "Control.ListArtifacts", expected: readable()) { client, metadata, _, _ in
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).listArtifacts(.init(), metadata: metadata)
    },
    Row(name: "Control.GetLogStream", expected: readable(.notFound)) { client, metadata, _, _ in
      var request = Deckhand_Control_V1_GetLogStreamRequest()
      request.node = "nobody"
      request.plugin = "echo"
      try await Deckhand_Control_V1_Control.Client(wrapping: client).getLogStream(request, metadata: metadata) {
        for try await _ in $0.messages {}
      }
    },
    Row(name: "Control.StreamEvents", expected: readable()) { client, metadata, _, _ in
      try await Deckhand_Control_V1_Control.Client(wrapping: client).streamEvents(.init(), metadata: metadata) {
        for try await _ in $0.messages {}
      }
    },
  ]

  /// Last: the invite is used up by its own call.
  static let inviteRows: [Row] = [
    Row(
      name: "Control.ConvertInvite",
      expected: [
        .nobody: .unauthenticated, .joinToken: .permissionDenied, .otherNode: .permissionDenied,
        .node: .permissionDenied, .operatorToken: .permissionDenied, .viewer: .permissionDenied, .invite: nil,
      ]
    ) { client, metadata, _, _ in
      _ = try await Deckhand_Control_V1_Control.Client(wrapping: client).convertInvite(.init(), metadata: metadata)
    }
  ]

  static let dispatcherRows: [Row] = [
    Row(name: "Dispatcher.GetCA", expected: everyone) { client, metadata, _, _ in
      _ = try await Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client).getCA(.init(), metadata: metadata)
    },
    Row(
      name: "Dispatcher.Join",
      expected: [
        .nobody: .unauthenticated, .joinToken: nil, .otherNode: .permissionDenied, .node: .permissionDenied,
        .operatorToken: .permissionDenied,
      ]
    ) { client, metadata, caller, _ in
      var request = Deckhand_Dispatcher_V1_JoinRequest()
      request.nodeName = "matrix-join-\(caller.rawValue.lowercased())"
      _ = try await Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client).join(request, metadata: metadata)
    },
    // B presenting A's session: not B's current session.
    Row(name: "Dispatcher.Heartbeat", expected: nodeOnly(otherNode: .notFound)) { client, metadata, _, fleet in
      var request = Deckhand_Dispatcher_V1_HeartbeatRequest()
      request.sessionID = fleet.sessionA
      _ = try await Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client).heartbeat(request, metadata: metadata)
    },
    // The same on the heartbeat stream: B's stream with A's session ends NOT_FOUND.
    Row(name: "Dispatcher.Heartbeats", expected: nodeOnly(otherNode: .notFound)) { client, metadata, _, fleet in
      var request = Deckhand_Dispatcher_V1_HeartbeatRequest()
      request.sessionID = fleet.sessionA
      let beat = request
      try await Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client).heartbeats(
        metadata: metadata, requestProducer: { writer in try await writer.write(beat) }
      ) { response in
        var answers = response.messages.makeAsyncIterator()
        guard let answer = try await answers.next(), answer.periodMs > 0 else {
          throw RPCError(code: .dataLoss, message: "no period in the heartbeat's answer")
        }
      }
    },
    // B reporting A's task FAILED is answered OK and changes nothing (checked after the row).
    Row(name: "Dispatcher.UpdateTaskStatus", expected: nodeOnly()) { client, metadata, caller, fleet in
      var status = Deckhand_Dispatcher_V1_TaskStatus()
      status.taskID = fleet.taskA
      status.state = caller == .node ? .running : .failed
      status.message = "reported by \(caller)"
      var request = Deckhand_Dispatcher_V1_UpdateTaskStatusRequest()
      request.updates = [status]
      _ = try await Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client).updateTaskStatus(
        request, metadata: metadata)
    },
    // Each node sees its own assignments only.
    Row(name: "Dispatcher.Assignments", expected: nodeOnly()) { client, metadata, caller, fleet in
      try await Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client).assignments(.init(), metadata: metadata) {
        response in
        let seen = try await first(response)?.changes.map(\.task.id) ?? []
        guard seen.contains(fleet.taskA) == (caller == .node) else {
          throw RPCError(code: .dataLoss, message: "\(caller) saw \(seen), A's task is \(fleet.taskA)")
        }
      }
    },
    Row(name: "Dispatcher.Tasks", expected: nodeOnly()) { client, metadata, caller, fleet in
      try await Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client).tasks(.init(), metadata: metadata) {
        response in
        let seen = try await first(response)?.tasks.map(\.id) ?? []
        guard seen.contains(fleet.taskA) == (caller == .node) else {
          throw RPCError(code: .dataLoss, message: "\(caller) saw \(seen), A's task is \(fleet.taskA)")
        }
      }
    },
    // B has no task with A's artifact: it does not learn it exists.
    Row(
      name: "Dispatcher.DownloadArtifact",
      expected: [
        .nobody: .unauthenticated, .joinToken: .permissionDenied, .otherNode: .notFound, .node: nil,
        .operatorToken: nil,
      ]
    ) { client, metadata, _, fleet in
      var request = Deckhand_Dispatcher_V1_DownloadArtifactRequest()
      request.digest = fleet.digest
      try await Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client).downloadArtifact(
        request, metadata: metadata
      ) { response in
        try accepted(response)
        for try await _ in response.messages {}
      }
    },
    // Last among the dispatcher's: it replaces A's session.
    Row(name: "Dispatcher.Session", expected: nodeOnly()) { client, metadata, _, _ in
      try await Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client).session(.init(), metadata: metadata) {
        response in _ = try await first(response)
      }
    },
  ]

  static let jobsRows: [Row] = [
    Row(name: "Jobs.GetVersionInfo", expected: everyone) { client, metadata, _, _ in
      _ = try await Deckhand_Server_V1_Jobs.Client(wrapping: client).getVersionInfo(.init(), metadata: metadata)
    },
    Row(name: "Jobs.QueueJob", expected: operatorOnly()) { client, metadata, _, _ in
      var request = Deckhand_Server_V1_QueueJobRequest()
      request.job.noop = .init()
      request.job.target.labels = ["nobody": "has-this"]
      _ = try await Deckhand_Server_V1_Jobs.Client(wrapping: client).queueJob(request, metadata: metadata)
    },
    Row(name: "Jobs.CancelJob", expected: operatorOnly(.notFound)) { client, metadata, _, _ in
      var request = Deckhand_Server_V1_CancelJobRequest()
      request.jobID = "nonexistent"
      _ = try await Deckhand_Server_V1_Jobs.Client(wrapping: client).cancelJob(request, metadata: metadata)
    },
    Row(name: "Jobs.GetJob", expected: readable()) { client, metadata, _, fleet in
      var request = Deckhand_Server_V1_GetJobRequest()
      request.jobID = fleet.jobA
      _ = try await Deckhand_Server_V1_Jobs.Client(wrapping: client).getJob(request, metadata: metadata)
    },
    Row(name: "Jobs.ListJobs", expected: readable()) { client, metadata, _, _ in
      _ = try await Deckhand_Server_V1_Jobs.Client(wrapping: client).listJobs(.init(), metadata: metadata)
    },
    Row(name: "Jobs.ValidateJob", expected: readable()) { client, metadata, _, _ in
      var request = Deckhand_Server_V1_ValidateJobRequest()
      request.job.noop = .init()
      _ = try await Deckhand_Server_V1_Jobs.Client(wrapping: client).validateJob(request, metadata: metadata)
    },
    Row(name: "Jobs.PruneOldJobs", expected: operatorOnly()) { client, metadata, _, _ in
      _ = try await Deckhand_Server_V1_Jobs.Client(wrapping: client).pruneOldJobs(.init(), metadata: metadata)
    },
    Row(name: "Jobs.SetConfig", expected: operatorOnly()) { client, metadata, _, _ in
      var variable = Deckhand_Server_V1_ConfigVariable()
      variable.name = "MATRIX"
      variable.value = "1"
      var request = Deckhand_Server_V1_SetConfigRequest()
      request.variables = [variable]
      _ = try await Deckhand_Server_V1_Jobs.Client(wrapping: client).setConfig(request, metadata: metadata)
    },
    Row(name: "Jobs.GetConfig", expected: operatorOnly()) { client, metadata, _, _ in
      _ = try await Deckhand_Server_V1_Jobs.Client(wrapping: client).getConfig(.init(), metadata: metadata)
    },
    Row(name: "Jobs.GetJobStream", expected: readable()) { client, metadata, _, fleet in
      var request = Deckhand_Server_V1_GetJobStreamRequest()
      request.jobID = fleet.jobA
      try await Deckhand_Server_V1_Jobs.Client(wrapping: client).getJobStream(request, metadata: metadata) {
        response in _ = try await first(response)
      }
    },
    Row(name: "Jobs.RunnerConfig", expected: nodeOnly()) { client, metadata, _, _ in
      try await Deckhand_Server_V1_Jobs.Client(wrapping: client).runnerConfig(.init(), metadata: metadata) {
        response in _ = try await first(response)
      }
    },
    // B resuming (and so acknowledging, heartbeating or finishing) A's running job is refused.
    Row(name: "Jobs.RunnerJobStream", expected: nodeOnly(otherNode: .invalidArgument)) {
      client, metadata, _, fleet in
      try await Deckhand_Server_V1_Jobs.Client(wrapping: client).runnerJobStream(metadata: metadata) { writer in
        var request = Deckhand_Server_V1_RunnerJobStreamRequest()
        request.request.resumeJobID = fleet.jobA
        try await writer.write(request)
        try await Task.sleep(for: .seconds(2))
      } onResponse: { response in
        guard case .resumed = try await first(response)?.event else {
          throw RPCError(code: .dataLoss, message: "no Resumed for job \(fleet.jobA)")
        }
      }
    },
    Row(name: "Jobs.ExecStream", expected: operatorOnly(.notFound)) { client, metadata, _, _ in
      try await Deckhand_Server_V1_Jobs.Client(wrapping: client).execStream(metadata: metadata) { writer in
        var request = Deckhand_Server_V1_ExecStreamRequest()
        request.start.node = "nonexistent"
        request.start.argv = ["true"]
        try await writer.write(request)
      } onResponse: { response in
        _ = try await first(response)
      }
    },
    Row(name: "Jobs.RunnerExecControl", expected: nodeOnly()) { client, metadata, _, _ in
      try await Deckhand_Server_V1_Jobs.Client(wrapping: client).runnerExecControl(.init(), metadata: metadata) {
        response in try accepted(response)
      }
    },
    // B attaching to the exec sent to A: it is not there for B.
    Row(name: "Jobs.RunnerExecStream", expected: nodeOnly(otherNode: .notFound)) { client, metadata, _, fleet in
      try await Deckhand_Server_V1_Jobs.Client(wrapping: client).runnerExecStream(metadata: metadata) { writer in
        var request = Deckhand_Server_V1_RunnerExecStreamRequest()
        request.open = fleet.execA
        try await writer.write(request)
        try await Task.sleep(for: .seconds(2))
      } onResponse: { response in
        _ = try await first(response)
      }
    },
  ]

  /// The outcome of `body`: nil if it returned, else its status code; a
  /// call that hangs counts as `deadlineExceeded`.
  static func outcome(_ body: @escaping @Sendable () async throws -> Void) async -> RPCError.Code? {
    // A call that hangs must not hang the test: whichever ends first
    // answers, and a stuck call is left behind (cancelled).
    let answer = OnceAnswer()
    return await withCheckedContinuation { continuation in
      answer.set(continuation)
      let call = Task {
        do {
          try await body()
          answer.finish(nil)
        } catch let error as RPCError {
          answer.finish(error.code)
        } catch {
          answer.finish(.unknown)
        }
      }
      Task {
        try? await Task.sleep(for: .seconds(15))
        call.cancel()
        answer.finish(.deadlineExceeded)
      }
    }
  }

  /// Set once, read from any task.
  final class OnceFlag: Sendable {
    private let flag = Mutex(false)
    func set() { flag.withLock { $0 = true } }
    var isSet: Bool { flag.withLock { $0 } }
  }

  /// Resumes a continuation once, from whichever side comes first.
  final class OnceAnswer: Sendable {
    private let continuation = Mutex<CheckedContinuation<RPCError.Code?, Never>?>(nil)
    func set(_ continuation: CheckedContinuation<RPCError.Code?, Never>) {
      self.continuation.withLock { $0 = continuation }
    }
    func finish(_ code: RPCError.Code?) { continuation.withLock { $0.take() }?.resume(returning: code) }
  }

  @Test("each RPC answers each caller as its role allows; a node never reaches another node's things")
  func matrix() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    #expect(
      try await server.cli(["artifacts", "push", try ControlPlaneTests.echoPackage(in: root.root)]).status == 0)
    #expect(try await server.cli(["deploy", "echo@1.0.0", "--selector", "role=a"]).status == 0)
    let granting = try await server.cli(["tokens", "create", "--role", "worker", "--label", "role=a"])
    let grantToken = granting.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    let endpoint = try ServerEndpoint(parsing: server.endpoint)
    let ca = try await ControlPlaneClient.trustedCA(at: endpoint, token: server.operatorToken)

    let (fleet, exec) = try await ControlPlaneClient.withClient(endpoint, caPEM: ca) { client in
      try await Self.prepare(client, endpoint: endpoint, ca: ca, grantToken: grantToken, server: server)
    }
    var current = fleet
    var failures: [String] = []
    // One connection for every call, as a real client has.
    try await ControlPlaneClient.withClient(endpoint, caPEM: ca) { client in
      for row in Self.controlRows + Self.dispatcherRows + Self.jobsRows + Self.inviteRows {
        if row.name == "Jobs.RunnerExecStream" { current.execA = try await exec() }
        for caller in Caller.allCases {
          let fleet = current
          let got = await Self.outcome { try await row.body(client, fleet.metadata(caller), caller, fleet) }
          // A caller a row does not name is refused: viewers and invites
          // reach only what a row says.
          let expected = row.expected.keys.contains(caller) ? row.expected[caller] ?? nil : .permissionDenied
          if got != expected {
            failures.append(
              "\(row.name) by \(caller): got \(got.map { "\($0)" } ?? "OK"), expected \(expected.map { "\($0)" } ?? "OK")"
            )
          }
          if row.name == "Dispatcher.UpdateTaskStatus" && caller == .otherNode {
            let state = try await Self.taskState(fleet, client)
            if state == .failed { failures.append("B's report changed A's task to \(state)") }
          }
        }
      }
    }
    #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    // Streams still open (A's exec control) do not keep the server from stopping.
    server.signal(SIGTERM)
    #expect(await eventually(timeout: .seconds(15)) { !server.process.isRunning }, "the server stops on SIGTERM")
  }

  /// Joins A (granted role=a, so it gets the echo task) and B, opens A's
  /// session, gives A a running job, and returns the fleet and a function
  /// that sends A an exec (returning its id) while A's control stream is
  /// open.
  static func prepare(
    _ client: ControlPlaneClient.Client, endpoint: ServerEndpoint, ca: String, grantToken: String,
    server: ServerProcess
  ) async throws -> (Fleet, @Sendable () async throws -> String) {
    let dispatcher = Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client)
    func join(_ name: String, _ token: String) async throws -> Deckhand_Dispatcher_V1_JoinResponse {
      var request = Deckhand_Dispatcher_V1_JoinRequest()
      request.nodeName = name
      return try await dispatcher.join(request, metadata: ControlPlaneClient.metadata(token))
    }
    let a = try await join("matrix-a", grantToken)
    let b = try await join("matrix-b", server.workerToken)
    let nodeA = ControlPlaneClient.metadata(a.credential)
    let sessionA = try await dispatcher.session(.init(), metadata: nodeA) { response in
      try await first(response)?.sessionID ?? ""
    }
    // A's first session places the echo task on it.
    let operatorMetadata = ControlPlaneClient.metadata(server.operatorToken)
    let control = Deckhand_Control_V1_Control.Client(wrapping: client)
    var taskA = ""
    for _ in 0..<100 where taskA.isEmpty {
      var request = Deckhand_Control_V1_ListTasksRequest()
      request.node = a.nodeID
      taskA = try await control.listTasks(request, metadata: operatorMetadata).tasks.first?.id ?? ""
      if taskA.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
    }
    let digest = try await control.listArtifacts(.init(), metadata: operatorMetadata).artifacts.first?.digest ?? ""

    // A takes a job and acknowledges it: RUNNING, A's.
    let jobs = Deckhand_Server_V1_Jobs.Client(wrapping: client)
    var queue = Deckhand_Server_V1_QueueJobRequest()
    queue.job.noop = .init()
    queue.job.target.runnerID = a.nodeID
    let jobA = try await jobs.queueJob(queue, metadata: operatorMetadata).jobID
    let (assigned, assignedSignal) = AsyncStream.makeStream(of: Void.self)
    let (done, doneSignal) = AsyncStream.makeStream(of: Void.self)
    let running = try await jobs.runnerJobStream(metadata: nodeA) { writer in
      var request = Deckhand_Server_V1_RunnerJobStreamRequest()
      request.request = .init()
      try await writer.write(request)
      for await _ in assigned { break }
      var ack = Deckhand_Server_V1_RunnerJobStreamRequest()
      ack.ack = .init()
      try await writer.write(ack)
      for await _ in done { break }
    } onResponse: { response in
      defer { doneSignal.finish() }
      guard case .assignment = try await first(response)?.event else {
        throw RPCError(code: .dataLoss, message: "A got no assignment")
      }
      assignedSignal.yield()
      for _ in 0..<100 {
        var request = Deckhand_Server_V1_GetJobRequest()
        request.jobID = jobA
        if try await jobs.getJob(request, metadata: operatorMetadata).state == .running { return true }
        try await Task.sleep(for: .milliseconds(50))
      }
      return false
    }
    #expect(running, "A's job runs")

    let viewer = try await server.cli(["tokens", "create", "--role", "viewer"]).stdout
      .trimmingCharacters(in: .whitespacesAndNewlines)
    let invite = try await server.cli(["tokens", "invite", "--role", "viewer"]).stdout
      .trimmingCharacters(in: .whitespacesAndNewlines)
    let fleet = Fleet(
      endpoint: endpoint, ca: ca,
      credentials: [
        .joinToken: server.workerToken, .otherNode: b.credential, .node: a.credential,
        .operatorToken: server.operatorToken, .viewer: viewer, .invite: invite,
      ], nodeA: a.nodeID, sessionA: sessionA, taskA: taskA, jobA: jobA, digest: digest)

    // An exec for A: A's control stream is held open in the background and
    // hands over the id; the operator's stream waits for A's agent.
    let exec: @Sendable () async throws -> String = {
      let (ids, idSink) = AsyncStream.makeStream(of: String.self)
      Task {
        try? await fleet.withClient { client in
          try await Deckhand_Server_V1_Jobs.Client(wrapping: client).runnerExecControl(.init(), metadata: nodeA) {
            response in
            for try await request in response.messages { idSink.yield(request.execID) }
          }
        }
      }
      // The operator's exec fails while A's control stream is not yet
      // registered: it is sent again until A has it.
      let delivered = OnceFlag()
      Task {
        for _ in 0..<100 where !delivered.isSet {
          try? await fleet.withClient { client in
            try await Deckhand_Server_V1_Jobs.Client(wrapping: client).execStream(metadata: operatorMetadata) {
              writer in
              var request = Deckhand_Server_V1_ExecStreamRequest()
              request.start.node = fleet.nodeA
              request.start.argv = ["true"]
              try await writer.write(request)
              try await Task.sleep(for: .seconds(5))
            } onResponse: { response in
              for try await _ in response.messages {}
            }
          }
          try? await Task.sleep(for: .milliseconds(100))
        }
      }
      defer { delivered.set() }
      Task {
        try? await Task.sleep(for: .seconds(20))
        idSink.finish()
      }
      for await id in ids { return id }
      return ""
    }
    return (fleet, exec)
  }

  /// A's task's state, as the operator sees it.
  static func taskState(_ fleet: Fleet, _ client: ControlPlaneClient.Client) async throws
    -> Deckhand_Dispatcher_V1_TaskState
  {
    var request = Deckhand_Control_V1_ListTasksRequest()
    request.node = fleet.nodeA
    let tasks = try await Deckhand_Control_V1_Control.Client(wrapping: client).listTasks(
      request, metadata: fleet.metadata(.operatorToken), options: ControlPlaneClient.options(.seconds(10))
    ).tasks
    return tasks.first { $0.id == fleet.taskA }?.state ?? .removed
  }
}
