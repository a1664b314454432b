import DeckhandClient
import DeckhandCore
import DeckhandProtocol
import DeckhandTestSupport
import Foundation
import GRPCCore
import Synchronization
import Testing

/// A count shared by tasks.
final class Counter: Sendable {
  private let count = Atomic(0)
  func add() { count.add(1, ordering: .relaxed) }
  var value: Int { count.load(ordering: .relaxed) }
}

/// Bad peers against the server: connections that never authenticate,
/// a flood of TLS handshakes, oversized messages.
@Suite("The server holds under bad peers", .serialized)
struct ServerLimitsTests {
  /// Latencies of one kind of call, in milliseconds.
  struct Sample {
    var milliseconds: [Double] = []
    var failures: [String] = []

    mutating func time(_ call: () async throws -> Void) async {
      let start = ContinuousClock.now
      do {
        try await call()
        milliseconds.append((ContinuousClock.now - start).inSeconds * 1000)
      } catch {
        failures.append("\(error)")
      }
    }

    func percentile(_ p: Double) -> Double {
      let sorted = milliseconds.sorted()
      guard !sorted.isEmpty else { return .infinity }
      return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }

    var summary: String {
      String(
        format: "%d calls, p50 %.1f ms, p95 %.1f ms, max %.1f ms, %d failed", milliseconds.count, percentile(0.5),
        percentile(0.95), milliseconds.max() ?? 0, failures.count)
    }
  }

  /// A server (with `heartbeat` and `extra`) and a client that trusts it,
  /// for `body`; the server is stopped after it.
  static func withServer(
    heartbeat: String = "400ms", extra: [String] = [],
    _ body: (ServerProcess, ServerEndpoint, String, ControlPlaneClient.Client) async throws -> Void
  ) async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next(), heartbeat: heartbeat, extra: extra)
    try await server.waitUntilServing()
    let endpoint = try ServerEndpoint(parsing: server.endpoint)
    let ca = try await ControlPlaneClient.trustedCA(at: endpoint, token: server.operatorToken)
    try await ControlPlaneClient.withClient(endpoint, caPEM: ca) { client in
      try await body(server, endpoint, ca, client)
    }
    server.signal(SIGTERM)
  }

  /// Heartbeats and operator calls (on connections that are already
  /// authenticated) every 50 ms for `duration`; the server's descriptor
  /// count is sampled alongside.
  static func measure(
    for duration: Duration, dispatcher: Deckhand_Dispatcher_V1_Dispatcher.Client<some ClientTransport>,
    control: Deckhand_Control_V1_Control.Client<some ClientTransport>, node: Metadata, session: String,
    operatorMetadata: Metadata, serverPid: Int32
  ) async -> (heartbeats: Sample, operatorCalls: Sample, maxDescriptors: Int) {
    var heartbeats = Sample()
    var operatorCalls = Sample()
    var maxDescriptors = 0
    let end = ContinuousClock.now + duration
    while ContinuousClock.now < end {
      await heartbeats.time {
        var request = Deckhand_Dispatcher_V1_HeartbeatRequest()
        request.sessionID = session
        _ = try await dispatcher.heartbeat(request, metadata: node, options: ControlPlaneClient.options(.seconds(10)))
      }
      await operatorCalls.time {
        _ = try await control.listNodes(
          .init(), metadata: operatorMetadata, options: ControlPlaneClient.options(.seconds(10)))
      }
      let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(serverPid)/fd").count) ?? 0
      maxDescriptors = max(maxDescriptors, descriptors)
      try? await Task.sleep(for: .milliseconds(50))
    }
    return (heartbeats, operatorCalls, maxDescriptors)
  }

  @Test(
    "thousands of idle connections and a TLS handshake flood: heartbeats and operator calls keep their latency, new operator connections get in, descriptors stay bounded"
  )
  func flood() async throws {
    let unauthenticatedLimit = 512
    let limits = [
      "--authentication-deadline", "2s", "--max-unauthenticated-connections", "\(unauthenticatedLimit)",
      // 60 idle addresses × 8 leave room under the total for the handshake flood.
      "--max-unauthenticated-per-address", "8",
    ]
    try await Self.withServer(heartbeat: "5s", extra: limits) { server, _, _, client in
      let dispatcher = Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client)
      let control = Deckhand_Control_V1_Control.Client(wrapping: client)
      var join = Deckhand_Dispatcher_V1_JoinRequest()
      join.nodeName = "steady"
      let joined = try await dispatcher.join(join, metadata: ControlPlaneClient.metadata(server.workerToken))
      let node = ControlPlaneClient.metadata(joined.credential)
      let session = try await dispatcher.session(.init(), metadata: node) { response in
        for try await message in response.messages { return message.sessionID }
        return ""
      }
      let operatorMetadata = ControlPlaneClient.metadata(server.operatorToken)
      let pid = server.process.processIdentifier
      var cliStart = ContinuousClock.now
      _ = try await server.cli(["nodes", "ls"])
      let quietCLISeconds = (ContinuousClock.now - cliStart).inSeconds
      let baseline = await Self.measure(
        for: .seconds(3), dispatcher: dispatcher, control: control, node: node, session: session,
        operatorMetadata: operatorMetadata, serverPid: pid)

      // 3,000 idle connections from 60 addresses, and TLS handshakes from
      // 2 more, for 14 s.
      let port = String(server.endpoint.split(separator: ":").last ?? "")
      let flood = Process()
      flood.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
      flood.arguments = [
        "\(Fixtures.packageRoot)/Tests/Fixtures/python/flood.py", "127.0.0.1", port, "14", "60", "50", "2",
      ]
      let floodOutput = "\((server.stateDirectory as NSString).deletingLastPathComponent)/flood.json"
      _ = FileManager.default.createFile(atPath: floodOutput, contents: nil)
      flood.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: floodOutput))
      flood.standardError = flood.standardOutput
      try flood.run()
      defer { if flood.isRunning { flood.terminate() } }
      try await Task.sleep(for: .seconds(2))

      // A new operator connection (the CLI, from an address that has
      // authenticated before) gets in during the flood.
      cliStart = ContinuousClock.now
      let listed = try await server.cli(["nodes", "ls"])
      let cliSeconds = (ContinuousClock.now - cliStart).inSeconds
      let during = await Self.measure(
        for: .seconds(8), dispatcher: dispatcher, control: control, node: node, session: session,
        operatorMetadata: operatorMetadata, serverPid: pid)
      flood.waitUntilExit()
      let report = (try? String(contentsOfFile: floodOutput, encoding: .utf8)) ?? ""
      let counts = try JSONValue.parse(Array(report.utf8))
      func count(_ name: String) -> Int {
        if case .object(let fields) = counts, case .number(let value) = fields[name] { return Int(value) }
        return -1
      }
      let figures = """
        baseline heartbeats: \(baseline.heartbeats.summary); operator calls: \(baseline.operatorCalls.summary); \
        descriptors \(baseline.maxDescriptors)
        flood heartbeats: \(during.heartbeats.summary); operator calls: \(during.operatorCalls.summary); \
        descriptors \(during.maxDescriptors); CLI \(String(format: "%.2f", cliSeconds)) s \
        (quiet: \(String(format: "%.2f", quietCLISeconds)) s)
        flood: \(report)
        """
      print(figures)

      #expect(listed.status == 0 && listed.stdout.contains("steady"), "\(listed)\n\(figures)")
      #expect(during.heartbeats.failures.isEmpty, "\(during.heartbeats.failures.prefix(3))\n\(figures)")
      #expect(during.operatorCalls.failures.isEmpty, "\(during.operatorCalls.failures.prefix(3))\n\(figures)")
      // Latency: within 250 ms at the 95th percentile on a 2-core machine
      // whose other core runs the flood (measured: see the issue note).
      #expect(during.heartbeats.percentile(0.95) < 250, "\(figures)")
      #expect(during.operatorCalls.percentile(0.95) < 250, "\(figures)")
      // The flood was real: more connections than the limit were opened,
      // and the server closed them (refused, or at the deadline).
      #expect(count("idle_opened") > 3000 && count("idle_closed_by_server") > 1000, "\(figures)")
      #expect(count("handshakes") > 10, "\(figures)")
      // Descriptors: the unauthenticated limit, plus the server's own.
      #expect(during.maxDescriptors < unauthenticatedLimit + 150, "\(figures)")
      #expect(server.logText.contains("refusing connections"), "\(figures)")
    }
  }

  @Test("a node that floods the server with calls does not delay another node's heartbeats or operator calls")
  func noisyNode() async throws {
    // The quiet node and the operator on one connection, the noisy node on
    // its own (as real agents are).
    try await Self.withServer(heartbeat: "5s") { server, endpoint, ca, client in
      try await ControlPlaneClient.withClient(endpoint, caPEM: ca) { noisyClient in
        let dispatcher = Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client)
        let noisyDispatcher = Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: noisyClient)
        func joined(_ name: String) async throws -> (Metadata, String) {
          var join = Deckhand_Dispatcher_V1_JoinRequest()
          join.nodeName = name
          let joined = try await dispatcher.join(join, metadata: ControlPlaneClient.metadata(server.workerToken))
          let node = ControlPlaneClient.metadata(joined.credential)
          let session = try await dispatcher.session(.init(), metadata: node) { response in
            for try await message in response.messages { return message.sessionID }
            return ""
          }
          return (node, session)
        }
        let (quiet, quietSession) = try await joined("quiet")
        let (noisy, noisySession) = try await joined("noisy")
        let control = Deckhand_Control_V1_Control.Client(wrapping: client)
        let operatorMetadata = ControlPlaneClient.metadata(server.operatorToken)
        let pid = server.process.processIdentifier
        let baseline = await Self.measure(
          for: .seconds(3), dispatcher: dispatcher, control: control, node: quiet, session: quietSession,
          operatorMetadata: operatorMetadata, serverPid: pid)

        // 64 callers on the noisy node's connection: heartbeats and task
        // status reports (each a committed write), as fast as answered.
        let calls = Counter()
        let during = await withTaskGroup(of: Void.self) { group in
          for caller in 0..<64 {
            group.addTask {
              var index = 0
              while !Task.isCancelled {
                index += 1
                if (caller + index) % 2 == 0 {
                  var request = Deckhand_Dispatcher_V1_HeartbeatRequest()
                  request.sessionID = noisySession
                  _ = try? await noisyDispatcher.heartbeat(request, metadata: noisy)
                } else {
                  var status = Deckhand_Dispatcher_V1_TaskStatus()
                  status.taskID = "no-such-task-\(caller)-\(index)"
                  status.state = .running
                  var request = Deckhand_Dispatcher_V1_UpdateTaskStatusRequest()
                  request.sessionID = noisySession
                  request.updates = [status]
                  _ = try? await noisyDispatcher.updateTaskStatus(request, metadata: noisy)
                }
                calls.add()
              }
            }
          }
          try? await Task.sleep(for: .seconds(1))
          let measured = await Self.measure(
            for: .seconds(6), dispatcher: dispatcher, control: control, node: quiet, session: quietSession,
            operatorMetadata: operatorMetadata, serverPid: pid)
          group.cancelAll()
          return measured
        }
        let figures = """
          baseline heartbeats: \(baseline.heartbeats.summary); operator calls: \(baseline.operatorCalls.summary)
          noisy node (\(calls.value) calls in 7 s): heartbeats: \(during.heartbeats.summary); \
          operator calls: \(during.operatorCalls.summary)
          """
        print(figures)
        #expect(during.heartbeats.failures.isEmpty && during.operatorCalls.failures.isEmpty, "\(figures)")
        #expect(during.heartbeats.percentile(0.95) < 250, "\(figures)")
        #expect(during.operatorCalls.percentile(0.95) < 250, "\(figures)")
        // The flood was real: the noisy node made many times the quiet
        // node's calls. (A fixed count measured the test client's speed:
        // 1,559 calls in one run, 890 in another on the same machine.)
        #expect(
          calls.value > 8 * (during.heartbeats.milliseconds.count + during.operatorCalls.milliseconds.count) / 2,
          "the flood was real: \(figures)")
      }
    }
  }

  @Test("a message over the size limit is refused with RESOURCE_EXHAUSTED; the connection keeps working")
  func oversizedMessage() async throws {
    try await Self.withServer { server, _, _, client in
      let control = Deckhand_Control_V1_Control.Client(wrapping: client)
      let operatorMetadata = ControlPlaneClient.metadata(server.operatorToken)
      var request = Deckhand_Control_V1_GetNodeRequest()
      request.node = String(repeating: "x", count: 9 << 20)
      await #expect {
        _ = try await control.getNode(request, metadata: operatorMetadata)
      } throws: { error in
        guard let error = error as? RPCError else { return false }
        return error.code == .resourceExhausted
          && error.message.contains("over the server's limit of 1048576 bytes for /deckhand.control.v1.Control/GetNode")
      }
      let nodes = try await control.listNodes(.init(), metadata: operatorMetadata)
      #expect(nodes.nodes.isEmpty)
    }
  }
}
