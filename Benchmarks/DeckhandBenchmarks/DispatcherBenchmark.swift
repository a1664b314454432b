internal import DeckhandClient
package import DeckhandCore
internal import DeckhandPluginHost
internal import DeckhandProtocol
internal import DeckhandTestSupport
internal import Foundation
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix

/// `deckhand-bench dispatcher --agents N`: N simulated agents in this
/// process (each joined, with its own Session stream, Assignments stream
/// and heartbeats at the server's period) against a real `deckhand server`
/// process, on SQLite or on a throw-away PostgreSQL. Prints the server's
/// CPU per heartbeat and memory per session, nodes wrongly marked DOWN, and
/// how long a first deployment and then a version upgrade take to reach
/// every node.
///
/// With two CPUs or more the server runs on CPU 0 and this process (the
/// simulated agents) on CPU 1, so the agents' CPU stays out of the
/// server's figures; PostgreSQL, when used, runs where the kernel puts it.
package struct DispatcherBenchmark: Sendable {
  package struct Options: Sendable {
    package var agents = 1000
    /// The steady phase, after every node is READY and the deployment
    /// reached them.
    package var duration: Duration = .seconds(30)
    package var heartbeatPeriod: Duration = .seconds(5)
    /// PostgreSQL (a throw-away cluster the benchmark starts) instead of
    /// SQLite.
    package var postgres = false
    /// Nodes the upgrade replaces at once (0: all).
    package var upgradeParallelism = 0
    /// The server's `--max-heartbeats-per-second` (nil: its default).
    package var maxHeartbeatsPerSecond: Int?
    /// Pin the server and the simulated agents to different CPUs.
    package var pin = true
    /// Run the server with `--metrics-listen`, scraped every 5 s during
    /// the steady phase as Prometheus would.
    package var metrics = false
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

  typealias Control = Deckhand_Control_V1_Control.Client<HTTP2ClientTransport.Posix>

  let options: Options
  package init(options: Options) { self.options = options }

  package func run(report: @Sendable (Figure) -> Void) async throws {
    // The cluster outlives the servers and agents, which `measure` stops
    // before it returns or throws.
    try await PostgresCluster.with(if: options.postgres) { cluster in try await measure(cluster, report: report) }
  }

  private func measure(_ cluster: PostgresCluster?, report: @Sendable (Figure) -> Void) async throws {
    let root = FileManager.default.temporaryDirectory.path + "/deckhand-bench-dispatcher-\(getpid())"
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: root) }
    let port = try FreePort.next()
    let metricsPort = options.metrics ? try FreePort.next() : nil
    let server = Process()
    server.executableURL = URL(fileURLWithPath: options.executable)
    var database: [String] = []
    if let cluster { database = ["--database-url", try await cluster.databaseURL()] }
    server.arguments =
      [
        "server", "--http-listen", "off", "--listen", "127.0.0.1:\(port)", "--state-dir", "\(root)/server",
        "--heartbeat-period",
        DurationText.format(options.heartbeatPeriod),
        // Every simulated agent comes from 127.0.0.1: the per-address
        // limit on connections mid-handshake is sized for real agents,
        // one or a few per address.
        "--max-unauthenticated-per-address", "1024",
      ] + database + (options.maxHeartbeatsPerSecond.map { ["--max-heartbeats-per-second", "\($0)"] } ?? [])
      + (metricsPort.map { ["--metrics-listen", "127.0.0.1:\($0)"] } ?? [])
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
    let pinned = options.pin && CPUPinning.cpus >= 2
    if pinned {
      CPUPinning.pinSelf(to: 1)
      CPUPinning.pin(pid: server.processIdentifier, to: 0)
    }
    let begin = ContinuousClock.now
    while !FileManager.default.fileExists(atPath: "\(root)/server/serving.json") {
      guard begin.duration(to: .now) < .seconds(60), server.isRunning else {
        throw DeckhandError(.startTimeout, "the server did not start; its log: \(logPath)")
      }
      if pinned { CPUPinning.pin(pid: server.processIdentifier, to: 0) }
      try await Task.sleep(for: .milliseconds(50))
    }
    try await Task.sleep(for: .milliseconds(200))
    if pinned { CPUPinning.pin(pid: server.processIdentifier, to: 0) }
    report(Figure(name: "store", value: cluster == nil ? 0 : 1, unit: cluster == nil ? "sqlite" : "postgres"))
    report(Figure(name: "pinned", value: pinned ? 1 : 0, unit: pinned ? "server:cpu0,agents:cpu1" : "no"))
    let rssIdle = Self.rssKiB(pid: server.processIdentifier)
    let operatorToken = try String(contentsOfFile: "\(root)/server/operator-token", encoding: .utf8)
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
    let runners = clients.map { client in Task { try await client.runConnections() } }
    defer {
      for client in clients { client.beginGracefulShutdown() }
      for runner in runners { runner.cancel() }
    }
    let control = Control(wrapping: clients[0])
    let operatorMetadata = ControlPlaneClient.metadata(operatorToken)

    let joinStart = ContinuousClock.now
    let agents = try await join(clients, workerToken: workerToken)
    report(
      Figure(name: "join_rate", value: Double(agents.count) / joinStart.duration(to: .now).inSeconds, unit: "nodes/s"))

    // Sessions, assignment streams and heartbeats.
    let period = options.heartbeatPeriod
    let log = HeartbeatLog()
    let agentTasks = Task {
      await withTaskGroup(of: Void.self) { group in
        for (index, agent) in agents.enumerated() {
          let dispatcher = SimulatedAgent.Dispatcher(wrapping: clients[index % clients.count])
          group.addTask { await agent.run(dispatcher, period: period, log: log) }
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
    let rssSessions = Self.rssKiB(pid: server.processIdentifier)
    report(
      Figure(
        name: "server_rss_kib_per_session", value: (rssSessions - rssIdle) / Double(max(1, agents.count)),
        unit: "KiB"))

    // A first deployment to every node.
    let deployed = try await deploy(
      "1.0.0", parallelism: 0, agents: agents, control: control, metadata: operatorMetadata, root: root)
    Self.reportReach("deploy_all", deployed, report: report)

    // The steady phase: CPU, memory, and any node wrongly DOWN.
    let cpuStart = Self.cpuSeconds(pid: server.processIdentifier)
    let postgresStart = cluster == nil ? [:] : Self.postgresCPUSeconds()
    let steadyStart = ContinuousClock.now
    log.record(late: options.duration / 2)
    var wronglyDown: Set<String> = []
    var scrapes = 0
    var lastScrape = ContinuousClock.now
    while steadyStart.duration(to: .now) < options.duration {
      try await Task.sleep(for: .seconds(3))
      if let metricsPort, lastScrape.duration(to: .now) >= .seconds(5) {
        lastScrape = .now
        let scraped = try await HTTPProbe.get(port: metricsPort, "/metrics")
        guard scraped.status == 200, scraped.body.contains("deckhand_heartbeats_total") else {
          throw DeckhandError(.callFailed, "the server's /metrics answered \(scraped.status)")
        }
        scrapes += 1
      }
      let nodes = try await control.listNodes(Deckhand_Control_V1_ListNodesRequest(), metadata: operatorMetadata).nodes
      for node in nodes where node.status == .down { wronglyDown.insert(node.id) }
    }
    log.stopRecording()
    let steady = steadyStart.duration(to: .now).inSeconds
    let cpu = Self.cpuSeconds(pid: server.processIdentifier) - cpuStart
    let postgresCPU = cluster == nil ? 0 : Self.postgresCPU(from: postgresStart, to: Self.postgresCPUSeconds())
    let heartbeats = log.summary
    report(Figure(name: "agents", value: Double(agents.count), unit: "nodes"))
    if options.metrics { report(Figure(name: "metrics_scrapes", value: Double(scrapes), unit: "scrapes")) }
    report(Figure(name: "server_cpu_percent", value: 100 * cpu / steady, unit: "%"))
    if cluster != nil { report(Figure(name: "postgres_cpu_percent", value: 100 * postgresCPU / steady, unit: "%")) }
    report(Figure(name: "server_rss_mib", value: Self.rssKiB(pid: server.processIdentifier) / 1024, unit: "MiB"))
    report(Figure(name: "heartbeats_per_s", value: Double(heartbeats.roundTrips.count) / steady, unit: "calls/s"))
    report(
      Figure(
        name: "server_cpu_us_per_heartbeat", value: (cpu * 1e6 / Double(max(1, heartbeats.roundTrips.count))).rounded(),
        unit: "us"))
    for (prefix, sorted) in [("heartbeat", heartbeats.roundTrips), ("heartbeat_late", heartbeats.late)] {
      report(Figure(name: "\(prefix)_p50_ms", value: JobsBenchmark.percentile(sorted, 0.5), unit: "ms"))
      report(Figure(name: "\(prefix)_p99_ms", value: JobsBenchmark.percentile(sorted, 0.99), unit: "ms"))
      report(Figure(name: "\(prefix)_max_ms", value: sorted.last ?? -1, unit: "ms"))
    }

    // A version upgrade of every node.
    let upgraded = try await deploy(
      "2.0.0", parallelism: options.upgradeParallelism, agents: agents, control: control,
      metadata: operatorMetadata, root: root)
    report(Figure(name: "upgrade_parallelism", value: Double(options.upgradeParallelism), unit: "nodes(0=all)"))
    Self.reportReach("upgrade_all", upgraded, report: report)

    // Wrongly DOWN at any time since every node was READY.
    let nodes = try await control.listNodes(Deckhand_Control_V1_ListNodesRequest(), metadata: operatorMetadata).nodes
    for node in nodes where node.status == .down { wronglyDown.insert(node.id) }
    wronglyDown.formUnion(Self.nodesMarkedDown(log: logPath, from: logOffset))
    report(Figure(name: "false_down", value: Double(wronglyDown.count), unit: "nodes"))
    let final = log.summary
    report(Figure(name: "heartbeats_failed", value: Double(final.failed), unit: "calls"))
    if let error = final.firstError {
      FileHandle.standardError.write(Data("first heartbeat error: \(error)\n".utf8))
    }
  }

  /// Joins `options.agents` simulated agents, 16 at a time.
  private func join(_ clients: [GRPCClient<HTTP2ClientTransport.Posix>], workerToken: String) async throws
    -> [SimulatedAgent]
  {
    let count = options.agents
    return try await withThrowingTaskGroup(of: [SimulatedAgent].self) { group in
      let workers = 16
      for worker in 0..<workers {
        group.addTask {
          var mine: [SimulatedAgent] = []
          var index = worker
          while index < count {
            let dispatcher = SimulatedAgent.Dispatcher(wrapping: clients[index % clients.count])
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
  }

  /// Pushes the bench plugin at `version` and deploys it to every node,
  /// `parallelism` at a time (0: all); how long after the deployment was
  /// made each node got its task (up to two minutes), and when the server
  /// counted the rollout complete (up to three).
  private func deploy(
    _ version: String, parallelism: Int, agents: [SimulatedAgent], control: Control, metadata: Metadata,
    root: String
  ) async throws -> (arrived: [Duration], complete: Duration?) {
    let package = "\(root)/bench-plugin-\(version)"
    try FileManager.default.createDirectory(atPath: package, withIntermediateDirectories: true)
    try Data(#"{"name": "bench", "version": "\#(version)", "entrypoint": "bench"}"#.utf8)
      .write(to: URL(fileURLWithPath: "\(package)/plugin.json"))
    try ArtifactPackage.pack(package, into: "\(package).tar.gz")
    let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(package).tar.gz"))
    _ = try await control.pushArtifact(metadata: metadata) { writer in
      var chunk = Deckhand_Control_V1_PushArtifactChunk()
      chunk.name = "bench"
      chunk.version = version
      chunk.platform = "any"
      chunk.data = bytes
      try await writer.write(chunk)
    }
    var request = Deckhand_Control_V1_CreateDeploymentRequest()
    request.plugin = "bench"
    request.version = version
    request.parallelism = parallelism == 0 ? -1 : Int32(parallelism)
    let start = ContinuousClock.now
    let deployment = try await control.createDeployment(request, metadata: metadata)
    var arrived: [Duration] = []
    while start.duration(to: .now) < .seconds(120) {
      try await Task.sleep(for: .milliseconds(100))
      arrived = agents.compactMap { $0.arrival(of: version).map { start.duration(to: $0) } }
      if arrived.count == agents.count { break }
    }
    // Then until the server counts the rollout complete.
    var get = Deckhand_Control_V1_GetDeploymentRequest()
    get.id = deployment.id
    var complete: Duration?
    while start.duration(to: .now) < .seconds(180) {
      if try await control.getDeployment(get, metadata: metadata).state == "complete" {
        complete = start.duration(to: .now)
        break
      }
      try await Task.sleep(for: .milliseconds(250))
    }
    return (arrived, complete)
  }

  private static func reportReach(
    _ name: String, _ reach: (arrived: [Duration], complete: Duration?), report: (Figure) -> Void
  ) {
    let arrived = reach.arrived
    let sorted = arrived.map(\.inMilliseconds).sorted()
    report(Figure(name: "\(name)_reached", value: Double(arrived.count), unit: "nodes"))
    report(Figure(name: "\(name)_p50_ms", value: JobsBenchmark.percentile(sorted, 0.5).rounded(), unit: "ms"))
    report(Figure(name: "\(name)_p99_ms", value: JobsBenchmark.percentile(sorted, 0.99).rounded(), unit: "ms"))
    report(Figure(name: "\(name)_max_ms", value: (sorted.last ?? -1).rounded(), unit: "ms"))
    report(
      Figure(name: "\(name)_complete_ms", value: reach.complete.map { $0.inMilliseconds.rounded() } ?? -1, unit: "ms"))
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

  /// utime + stime of each process named postgres, in seconds, by pid.
  static func postgresCPUSeconds() -> [Int32: Double] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    var seconds: [Int32: Double] = [:]
    for entry in entries {
      guard let pid = Int32(entry),
        let name = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8),
        name.hasPrefix("postgres")
      else { continue }
      seconds[pid] = cpuSeconds(pid: pid)
    }
    return seconds
  }

  /// The CPU PostgreSQL's processes used between two samples: each one's
  /// growth (a backend started meanwhile from zero; one that ended is
  /// left out).
  static func postgresCPU(from start: [Int32: Double], to end: [Int32: Double]) -> Double {
    end.reduce(0) { total, entry in total + max(0, entry.value - (start[entry.key] ?? 0)) }
  }

  static func rssKiB(pid: Int32) -> Double { PluginBenchmark.rssKiB(pid: pid) }
}
