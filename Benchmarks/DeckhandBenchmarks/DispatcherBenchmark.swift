internal import DeckhandClient
package import DeckhandCore
internal import DeckhandProtocol
internal import DeckhandTestSupport
internal import Foundation
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
internal import Synchronization

/// `deckhand bench dispatcher --agents N`: N simulated agents in this
/// process (each joined, with its own Session stream, Assignments stream
/// and heartbeats at the server's period) against a real `deckhand server`
/// process. Prints the server's CPU and memory, nodes wrongly marked DOWN,
/// and how long a deployment takes to reach the nodes.
package struct DispatcherBenchmark: Sendable {
  package struct Options: Sendable {
    package var agents = 1000
    /// The steady phase, after every node is READY and the deployment
    /// reached them.
    package var duration: Duration = .seconds(30)
    package var heartbeatPeriod: Duration = .seconds(5)
    /// The `deckhand` binary that runs the server.
    package var executable: String
    package init(executable: String) { self.executable = executable }
  }

  package struct Figure: Sendable, CustomStringConvertible {
    package var name: String
    package var value: Double
    package var unit: String
    package var description: String {
      let text = value.rounded() == value && abs(value) < 1e12 ? String(Int64(value)) : String(format: "%.3f", value)
      return "\(name) \(text) \(unit)"
    }
  }

  let options: Options
  package init(options: Options) { self.options = options }

  /// What the simulated agents saw of their heartbeats.
  final class HeartbeatLog: Sendable {
    private struct State {
      var sent = 0
      var failed = 0
      var firstError: String?
      /// Round trips of the steady phase, and when each ended.
      var roundTrips: [(at: ContinuousClock.Instant, ms: Double)] = []
      var recordingSince: ContinuousClock.Instant?
      var lateSince: ContinuousClock.Instant?
    }
    private let state = Mutex(State())
    func succeeded(after roundTrip: Duration) {
      state.withLock { state in
        state.sent += 1
        let now = ContinuousClock.now
        if let since = state.recordingSince, since < now { state.roundTrips.append((now, roundTrip.inMilliseconds)) }
      }
    }
    func failed(_ error: any Error) {
      state.withLock { state in
        state.failed += 1
        state.firstError = state.firstError ?? "\(error)"
      }
    }
    /// Round trips are kept from now on (the steady phase), and apart
    /// from `late` on (its second half, after the rollout settled).
    func record(late: Duration) {
      state.withLock { state in
        state.recordingSince = .now
        state.lateSince = .now + late
      }
    }
    /// The round trips (ms, sorted): all, and those of the second half.
    var summary: (sent: Int, failed: Int, firstError: String?, roundTrips: [Double], late: [Double]) {
      state.withLock { state in
        let late = state.lateSince.map { since in state.roundTrips.filter { $0.at > since } } ?? []
        return (
          state.sent, state.failed, state.firstError, state.roundTrips.map(\.ms).sorted(), late.map(\.ms).sorted()
        )
      }
    }
  }

  /// One simulated agent's view.
  final class SimulatedAgent: Sendable {
    let nodeId: String
    let credential: String
    /// When a task of the deployment arrived.
    let received = Mutex<ContinuousClock.Instant?>(nil)
    init(nodeId: String, credential: String) {
      self.nodeId = nodeId
      self.credential = credential
    }
  }

  package func run(report: @Sendable (Figure) -> Void) async throws {
    let root = FileManager.default.temporaryDirectory.path + "/deckhand-bench-dispatcher-\(getpid())"
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: root) }
    let port = try FreePort.next()
    let server = Process()
    server.executableURL = URL(fileURLWithPath: options.executable)
    server.arguments = [
      "server", "--listen", "127.0.0.1:\(port)", "--state-dir", "\(root)/server", "--heartbeat-period",
      DurationText.format(options.heartbeatPeriod),
    ]
    server.environment = ProcessInfo.processInfo.environment.merging(["XDG_CONFIG_HOME": "\(root)/config"]) { $1 }
    server.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
    // The server logs every node it marks DOWN: the log is the exact
    // count (polling the node list could miss a node DOWN for a moment).
    let logPath = "\(root)/server.log"
    FileManager.default.createFile(atPath: logPath, contents: nil)
    server.standardError = FileHandle(forWritingAtPath: logPath)
    try server.run()
    defer {
      server.terminate()
      server.waitUntilExit()
    }
    let tokenPath = "\(root)/server/operator-token"
    let begin = ContinuousClock.now
    while !FileManager.default.fileExists(atPath: "\(root)/server/worker-token") {
      guard begin.duration(to: .now) < .seconds(30), server.isRunning else {
        throw DeckhandError(.startTimeout, "the server did not start")
      }
      try await Task.sleep(for: .milliseconds(50))
    }
    try await Task.sleep(for: .milliseconds(200))
    let operatorToken = try String(contentsOfFile: tokenPath, encoding: .utf8)
    let workerToken = try String(contentsOfFile: "\(root)/server/worker-token", encoding: .utf8)
    let endpoint = ServerEndpoint(host: "127.0.0.1", port: port)
    let ca = try await ControlPlaneClient.trustedCA(at: endpoint, token: workerToken)

    // One connection per 25 simulated agents: real agents each have their
    // own, and a connection's streams share one task group on the server.
    let connections = max(4, (options.agents + 24) / 25)
    var made: [GRPCClient<HTTP2ClientTransport.Posix>] = []
    for _ in 0..<connections {
      made.append(GRPCClient(transport: try ControlPlaneClient.transport(endpoint, caPEM: ca)))
    }
    let clients = made
    let options = self.options
    let runners = clients.map { client in Task { try await client.runConnections() } }
    defer {
      for client in clients { client.beginGracefulShutdown() }
      for runner in runners { runner.cancel() }
    }
    let control = Deckhand_Control_V1_Control.Client(wrapping: clients[0])
    let operatorMetadata = ControlPlaneClient.metadata(operatorToken)

    // Join.
    let joinStart = ContinuousClock.now
    let agents = try await withThrowingTaskGroup(of: [SimulatedAgent].self) { group in
      let workers = 16
      for worker in 0..<workers {
        group.addTask {
          var mine: [SimulatedAgent] = []
          var index = worker
          while index < options.agents {
            let dispatcher = Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: clients[index % clients.count])
            var request = Deckhand_Dispatcher_V1_JoinRequest()
            request.nodeName = "sim-\(index)"
            request.description_p.hostname = "sim-\(index)"
            request.description_p.labels = ["bench": "yes"]
            let response = try await dispatcher.join(request, metadata: ControlPlaneClient.metadata(workerToken))
            mine.append(SimulatedAgent(nodeId: response.nodeID, credential: response.credential))
            index += workers
          }
          return mine
        }
      }
      var all: [SimulatedAgent] = []
      for try await part in group { all += part }
      return all
    }
    report(
      Figure(name: "join_rate", value: Double(agents.count) / joinStart.duration(to: .now).inSeconds, unit: "nodes/s"))

    // Sessions, assignment streams and heartbeats.
    let period = options.heartbeatPeriod
    let log = HeartbeatLog()
    let agentTasks = Task {
      await withTaskGroup(of: Void.self) { group in
        for (index, agent) in agents.enumerated() {
          let dispatcher = Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: clients[index % clients.count])
          let metadata = ControlPlaneClient.metadata(agent.credential)
          group.addTask {
            await Self.simulate(agent, dispatcher: dispatcher, metadata: metadata, period: period, log: log)
          }
        }
      }
    }
    defer { agentTasks.cancel() }
    let readyStart = ContinuousClock.now
    var ready = 0
    while ready < agents.count && readyStart.duration(to: .now) < .seconds(300) {
      try await Task.sleep(for: .seconds(2))
      let nodes = try await control.listNodes(Deckhand_Control_V1_ListNodesRequest(), metadata: operatorMetadata).nodes
      ready = nodes.filter { $0.status == .ready }.count
    }
    let logOffset = (try? FileManager.default.attributesOfItem(atPath: logPath)[.size] as? Int) ?? 0
    report(Figure(name: "sessions_ready", value: Double(ready), unit: "nodes"))
    report(Figure(name: "sessions_ready_s", value: readyStart.duration(to: .now).inSeconds, unit: "s"))

    // A deployment to every node.
    let package = "\(root)/bench-plugin"
    try FileManager.default.createDirectory(atPath: package, withIntermediateDirectories: true)
    try Data(#"{"name": "bench", "version": "1.0.0", "entrypoint": "bench"}"#.utf8)
      .write(to: URL(fileURLWithPath: "\(package)/plugin.json"))
    try ArtifactPackage.pack(package, into: "\(root)/bench.tar.gz")
    let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(root)/bench.tar.gz"))
    _ = try await control.pushArtifact(metadata: operatorMetadata) { writer in
      var chunk = Deckhand_Control_V1_PushArtifactChunk()
      chunk.name = "bench"
      chunk.version = "1.0.0"
      chunk.platform = "any"
      chunk.data = bytes
      try await writer.write(chunk)
    }
    var deploy = Deckhand_Control_V1_CreateDeploymentRequest()
    deploy.plugin = "bench"
    deploy.version = "1.0.0"
    let deployStart = ContinuousClock.now
    _ = try await control.createDeployment(deploy, metadata: operatorMetadata)
    var arrived: [Duration] = []
    while deployStart.duration(to: .now) < .seconds(120) {
      try await Task.sleep(for: .milliseconds(100))
      arrived = agents.compactMap { $0.received.withLock { $0 }.map { deployStart.duration(to: $0) } }
      if arrived.count == agents.count { break }
    }
    let reach = arrived.map(\.inMilliseconds).sorted()
    report(Figure(name: "deploy_reached", value: Double(arrived.count), unit: "nodes"))
    report(Figure(name: "deploy_all_p50_ms", value: JobsBenchmark.percentile(reach, 0.5), unit: "ms"))
    report(Figure(name: "deploy_all_p99_ms", value: JobsBenchmark.percentile(reach, 0.99), unit: "ms"))
    report(Figure(name: "deploy_all_max_ms", value: reach.last ?? -1, unit: "ms"))

    // The steady phase: CPU, memory, and any node wrongly DOWN.
    let cpuStart = Self.cpuSeconds(pid: server.processIdentifier)
    let steadyStart = ContinuousClock.now
    log.record(late: options.duration / 2)
    var wronglyDown: Set<String> = []
    while steadyStart.duration(to: .now) < options.duration {
      try await Task.sleep(for: .seconds(3))
      let nodes = try await control.listNodes(Deckhand_Control_V1_ListNodesRequest(), metadata: operatorMetadata).nodes
      for node in nodes where node.status == .down { wronglyDown.insert(node.id) }
    }
    let cpu = Self.cpuSeconds(pid: server.processIdentifier) - cpuStart
    report(Figure(name: "agents", value: Double(agents.count), unit: "nodes"))
    wronglyDown.formUnion(Self.nodesMarkedDown(log: logPath, from: logOffset))
    report(Figure(name: "false_down", value: Double(wronglyDown.count), unit: "nodes"))
    report(
      Figure(name: "server_cpu_percent", value: 100 * cpu / steadyStart.duration(to: .now).inSeconds, unit: "%"))
    report(Figure(name: "server_rss_mib", value: Self.rssMiB(pid: server.processIdentifier), unit: "MiB"))
    report(
      Figure(
        name: "heartbeats_per_s", value: Double(agents.count) / period.inSeconds, unit: "calls/s"))
    let heartbeats = log.summary
    report(Figure(name: "heartbeats_failed", value: Double(heartbeats.failed), unit: "calls"))
    if let error = heartbeats.firstError {
      FileHandle.standardError.write(Data("first heartbeat error: \(error)\n".utf8))
    }
    for (prefix, sorted) in [("heartbeat", heartbeats.roundTrips), ("heartbeat_late", heartbeats.late)] {
      report(Figure(name: "\(prefix)_p50_ms", value: JobsBenchmark.percentile(sorted, 0.5), unit: "ms"))
      report(Figure(name: "\(prefix)_p99_ms", value: JobsBenchmark.percentile(sorted, 0.99), unit: "ms"))
      report(Figure(name: "\(prefix)_max_ms", value: sorted.last ?? -1, unit: "ms"))
    }
  }

  /// One agent: a session held open, an assignments stream (the first
  /// task that arrives is timed) and heartbeats at the period, starting at
  /// a random point of it; all again if anything ends.
  static func simulate(
    _ agent: SimulatedAgent, dispatcher: Deckhand_Dispatcher_V1_Dispatcher.Client<HTTP2ClientTransport.Posix>,
    metadata: Metadata, period: Duration, log: HeartbeatLog
  ) async {
    while !Task.isCancelled {
      do {
        try await dispatcher.session(Deckhand_Dispatcher_V1_SessionRequest(), metadata: metadata) { response in
          var messages = response.messages.makeAsyncIterator()
          guard let first = try await messages.next() else { return }
          let id = first.sessionID
          try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
              try await Task.sleep(for: period * Double.random(in: 0..<1))
              var next = period
              while true {
                var beat = Deckhand_Dispatcher_V1_HeartbeatRequest()
                beat.sessionID = id
                let sent = ContinuousClock.now
                let answer: Deckhand_Dispatcher_V1_HeartbeatResponse
                do {
                  answer = try await dispatcher.heartbeat(beat, metadata: metadata)
                } catch {
                  log.failed(error)
                  throw error
                }
                log.succeeded(after: sent.duration(to: .now))
                next = .milliseconds(answer.periodMs)
                try await Task.sleep(for: next)
              }
            }
            group.addTask {
              var request = Deckhand_Dispatcher_V1_AssignmentsRequest()
              request.sessionID = id
              try await dispatcher.assignments(request, metadata: metadata) { response in
                for try await message in response.messages where !message.changes.isEmpty {
                  agent.received.withLock { $0 = $0 ?? .now }
                  var update = Deckhand_Dispatcher_V1_UpdateTaskStatusRequest()
                  update.sessionID = id
                  update.updates = message.changes.compactMap { change in
                    guard case .task(let task) = change.item else { return nil }
                    var status = Deckhand_Dispatcher_V1_TaskStatus()
                    status.taskID = task.id
                    status.state = .running
                    return status
                  }
                  _ = try await dispatcher.updateTaskStatus(update, metadata: metadata)
                }
              }
            }
            try await group.next()
            group.cancelAll()
          }
        }
      } catch {
        try? await Task.sleep(for: .milliseconds(Int.random(in: 100...1000)))
      }
    }
  }

  /// The nodes the server's log says it marked DOWN, after `offset`.
  static func nodesMarkedDown(log path: String, from offset: Int) -> Set<String> {
    guard let data = FileManager.default.contents(atPath: path), data.count > offset else { return [] }
    var nodes: Set<String> = []
    for line in String(decoding: data[offset...], as: UTF8.self).split(separator: "\n")
    where line.contains("node down") {
      for field in line.split(separator: " ") where field.hasPrefix("node=") {
        nodes.insert(String(field.dropFirst(5)))
      }
    }
    return nodes
  }

  /// utime + stime of `pid`, in seconds.
  static func cpuSeconds(pid: Int32) -> Double { DeckhandTestSupport.cpuSeconds(pid) }

  static func rssMiB(pid: Int32) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
      return (line.split(separator: " ").compactMap { Double($0) }.first ?? 0) / 1024
    }
    return 0
  }
}
