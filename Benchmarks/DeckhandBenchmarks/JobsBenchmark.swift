internal import DeckhandClient
package import DeckhandCore
internal import DeckhandProtocol
internal import DeckhandTestSupport
internal import Foundation
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix

/// `deckhand bench jobs`: a real server and real agents as runners (child
/// processes); N no-op jobs, then N short exec jobs, then one job that
/// prints fast to a reader of its stream.
package struct JobsBenchmark: Sendable {
  package struct Options: Sendable {
    package var jobs = 1000
    package var runners = 4
    /// Jobs each runner runs at once.
    package var slots = 4
    package var outputMegabytes = 64
    /// PostgreSQL (a throw-away cluster the benchmark starts) instead of
    /// SQLite.
    package var postgres = false
    /// Server replicas on the one PostgreSQL database; runners are spread
    /// over them, jobs are queued through the first.
    package var replicas = 1
    package var executable: String
    package init(executable: String) { self.executable = executable }
  }

  let options: Options
  package init(options: Options) { self.options = options }

  typealias Figure = DispatcherBenchmark.Figure
  typealias Jobs = Deckhand_Server_V1_Jobs.Client<HTTP2ClientTransport.Posix>

  package func run(report: @Sendable (DispatcherBenchmark.Figure) -> Void) async throws {
    // The cluster outlives the servers and agents, which `measure` stops
    // before it returns or throws.
    try await PostgresCluster.with(if: options.postgres || options.replicas > 1) { cluster in
      try await measure(cluster, report: report)
    }
  }

  private func measure(_ cluster: PostgresCluster?, report: @Sendable (DispatcherBenchmark.Figure) -> Void)
    async throws
  {
    let root = FileManager.default.temporaryDirectory.path + "/deckhand-bench-jobs-\(getpid())"
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: root) }
    let port = try FreePort.next()
    var children: [Process] = []
    defer {
      for child in children { child.terminate() }
      // Up to 10 s to stop, then SIGKILL.
      for _ in 0..<100 where children.contains(where: \.isRunning) { usleep(100_000) }
      for child in children where child.isRunning { kill(child.processIdentifier, SIGKILL) }
    }
    func spawn(_ arguments: [String]) throws -> Process {
      let process = Process()
      process.executableURL = URL(fileURLWithPath: options.executable)
      process.arguments = arguments
      process.environment = ProcessInfo.processInfo.environment.merging(["XDG_CONFIG_HOME": "\(root)/config"]) { $1 }
      process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
      process.standardError = FileHandle(forWritingAtPath: "/dev/null")
      try process.run()
      children.append(process)
      return process
    }
    var database: [String] = []
    if let cluster { database = ["--database-url", try await cluster.databaseURL()] }
    _ = try spawn(
      ["server", "--http-listen", "off", "--listen", "127.0.0.1:\(port)", "--state-dir", "\(root)/server"] + database)
    let begin = ContinuousClock.now
    while !FileManager.default.fileExists(atPath: "\(root)/server/operator-token") {
      guard begin.duration(to: .now) < .seconds(30) else { throw DeckhandError(.startTimeout, "no server") }
      try await Task.sleep(for: .milliseconds(50))
    }
    try await Task.sleep(for: .milliseconds(200))
    let operatorToken = try String(contentsOfFile: "\(root)/server/operator-token", encoding: .utf8)
    let workerToken = try String(contentsOfFile: "\(root)/server/worker-token", encoding: .utf8)
    // More replicas on the same database, each serving once it wrote its
    // serving.json.
    var ports = [port]
    for replica in 1..<max(1, options.replicas) {
      let other = try FreePort.next()
      _ = try spawn(
        ["server", "--http-listen", "off", "--listen", "127.0.0.1:\(other)", "--state-dir", "\(root)/server\(replica)"]
          + database)
      while !FileManager.default.fileExists(atPath: "\(root)/server\(replica)/serving.json") {
        guard begin.duration(to: .now) < .seconds(30) else { throw DeckhandError(.startTimeout, "no replica") }
        try await Task.sleep(for: .milliseconds(50))
      }
      ports.append(other)
    }
    for index in 0..<options.runners {
      _ = try spawn([
        "agent", "--state-dir", "\(root)/agent\(index)/state", "--runtime-dir", "\(root)/agent\(index)/run",
        "--socket", "\(root)/agent\(index)/commands.sock", "--node-name", "runner-\(index)", "--server",
        "127.0.0.1:\(ports[index % ports.count])", "--join-token", workerToken, "--stop-plugins-on-exit",
        "--job-slots", "\(options.slots)",
      ])
    }
    let endpoint = ServerEndpoint(host: "127.0.0.1", port: port)
    let ca = try await ControlPlaneClient.trustedCA(at: endpoint, token: operatorToken)
    let metadata = ControlPlaneClient.metadata(operatorToken)
    try await ControlPlaneClient.withClient(endpoint, caPEM: ca) { client in
      let control = Deckhand_Control_V1_Control.Client(wrapping: client)
      let jobs = Jobs(wrapping: client)
      var ready = 0
      while ready < options.runners {
        guard begin.duration(to: .now) < .seconds(60) else {
          throw DeckhandError(.startTimeout, "only \(ready) of \(options.runners) runners joined")
        }
        try await Task.sleep(for: .milliseconds(200))
        ready = try await control.listNodes(.init(), metadata: metadata).nodes.filter { $0.status == .ready }.count
      }
      // Let the runners open their job streams.
      try await Task.sleep(for: .seconds(1))

      report(Figure(name: "replicas", value: Double(ports.count), unit: "servers"))
      report(Figure(name: "runners", value: Double(options.runners), unit: "agents"))
      report(Figure(name: "runner_slots", value: Double(options.slots), unit: "jobs"))
      var noop = Deckhand_Server_V1_Job()
      noop.noop = .init()
      noop.target.any = true
      let (noopRate, backlog) = try await Self.measure(jobs, metadata, noop, count: options.jobs)
      report(Figure(name: "noop_jobs_per_s", value: noopRate, unit: "jobs/s"))
      report(Figure(name: "backlog_assign_p99_ms", value: Self.percentile(backlog, 0.99), unit: "ms"))
      // Queue-to-assignment with idle runners: one job at a time.
      var latencies: [Double] = []
      for _ in 0..<min(200, options.jobs) {
        var request = Deckhand_Server_V1_QueueJobRequest()
        request.job = noop
        let id = try await jobs.queueJob(request, metadata: metadata).jobID
        var get = Deckhand_Server_V1_GetJobRequest()
        get.jobID = id
        while true {
          let job = try await jobs.getJob(get, metadata: metadata)
          if job.state == .success || job.state == .error {
            latencies.append(Double(job.assignedMs - job.queuedMs))
            break
          }
          try await Task.sleep(for: .milliseconds(2))
        }
      }
      latencies.sort()
      report(Figure(name: "assign_p50_ms", value: Self.percentile(latencies, 0.5), unit: "ms"))
      report(Figure(name: "assign_p99_ms", value: Self.percentile(latencies, 0.99), unit: "ms"))

      var exec = Deckhand_Server_V1_Job()
      exec.exec.argv = ["true"]
      exec.target.any = true
      let (execRate, execLatencies) = try await Self.measure(jobs, metadata, exec, count: options.jobs)
      report(Figure(name: "exec_jobs_per_s", value: execRate, unit: "jobs/s"))
      report(Figure(name: "exec_assign_p99_ms", value: Self.percentile(execLatencies, 0.99), unit: "ms"))

      // Output: one job writing as fast as it can, read live.
      var printer = Deckhand_Server_V1_Job()
      let bytes = options.outputMegabytes << 20
      printer.exec.argv = ["sh", "-c", "head -c \(bytes) /dev/zero | tr '\\000' x"]
      printer.target.any = true
      var queue = Deckhand_Server_V1_QueueJobRequest()
      queue.job = printer
      let start = ContinuousClock.now
      let id = try await jobs.queueJob(queue, metadata: metadata).jobID
      var stream = Deckhand_Server_V1_GetJobStreamRequest()
      stream.jobID = id
      let received = try await jobs.getJobStream(stream, metadata: metadata) { response in
        var total = 0
        for try await message in response.messages {
          if case .terminal(let terminal) = message.event {
            for event in terminal.events { total += event.data.count }
          }
        }
        return total
      }
      let elapsed = start.duration(to: .now)
      guard received == bytes else {
        throw DeckhandError(.callFailed, "the output job's stream carried \(received) bytes, not \(bytes)")
      }
      report(Figure(name: "output_mb_per_s", value: Double(received) / 1e6 / elapsed.inSeconds, unit: "MB/s"))

      // The floor, after the jobs (its nodes and calls must not slow
      // them): what the server's gRPC carries here with nothing else to do.
      let floor = GRPCFloor(window: .seconds(3))
      let unary = try await floor.unaryCalls(jobs, metadata: metadata)
      let trips = try await floor.streamRoundTrips(
        Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client), workerToken: workerToken)
      report(Figure(name: "floor_unary_calls_per_s", value: unary, unit: "calls/s"))
      report(Figure(name: "floor_stream_round_trips_per_s", value: trips, unit: "round-trips/s"))
      report(
        Figure(
          name: "floor_noop_jobs_per_s", value: GRPCFloor.jobBound(unaryCalls: unary, streamRoundTrips: trips),
          unit: "jobs/s"))
    }
  }

  /// Queues `count` copies of `job` (``submitters`` at a time, as many
  /// operators' clients would) and waits until all
  /// succeeded; jobs per second, and each job's queue-to-assignment time.
  static func measure(_ jobs: Jobs, _ metadata: Metadata, _ job: Deckhand_Server_V1_Job, count: Int) async throws
    -> (Double, [Double])
  {
    let start = ContinuousClock.now
    let ids = try await withThrowingTaskGroup(of: [String].self) { group in
      for worker in 0..<submitters {
        group.addTask {
          var mine: [String] = []
          var index = worker
          while index < count {
            var request = Deckhand_Server_V1_QueueJobRequest()
            request.job = job
            mine.append(try await jobs.queueJob(request, metadata: metadata).jobID)
            index += submitters
          }
          return mine
        }
      }
      var all: [String] = []
      for try await part in group { all += part }
      return Set(all)
    }
    var done: [Deckhand_Server_V1_Job] = []
    while start.duration(to: .now) < .seconds(600) {
      var request = Deckhand_Server_V1_ListJobsRequest()
      request.states = [.success, .error]
      request.limit = Int32(count * 3)
      request.sinceMs = Int64(Date().timeIntervalSince1970 * 1000) - 3_600_000
      done = try await jobs.listJobs(request, metadata: metadata).jobs.filter { ids.contains($0.id) }
      if done.count == ids.count { break }
      // The rate comes from the jobs' own times: polling rarely keeps the
      // listing from loading the server it measures.
      try await Task.sleep(for: .seconds(1))
    }
    let elapsed = start.duration(to: .now)
    let failed = done.filter { $0.state != .success }
    if let first = failed.first {
      throw DeckhandError(.callFailed, "\(failed.count) benchmark jobs failed, e.g. \(first.error)")
    }
    let last = done.map(\.completeMs).max() ?? 0
    let first = done.map(\.queuedMs).min() ?? 0
    let rate = Double(done.count) / (last > first ? Double(last - first) / 1000 : elapsed.inSeconds)
    return (rate, done.map { Double($0.assignedMs - $0.queuedMs) }.sorted())
  }

  /// Clients queueing at once.
  static let submitters = 16

  static func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
    guard !sorted.isEmpty else { return -1 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
  }
}
