import DeckhandCore
import DeckhandGRPC
import DeckhandPluginHost
import DeckhandProtocol
import DeckhandTestSupport
import Foundation
import NIOCore
import SwiftProtobuf
import Testing

/// The lean gRPC path against itself on a real unix socket: the wire
/// features a gRPC peer relies on.
@Suite("Lean gRPC client and server")
struct LeanGRPCTests {
  /// A server with a few methods for the tests.
  static func router() -> LeanGRPCRouter {
    var router = LeanGRPCRouter()
    router.register("/test.Echo/Echo") { request, promise in promise.succeed(request) }
    router.register("/test.Echo/Fail") { request, promise in
      promise.fail(GRPCCallError(.failedPrecondition, String(decoding: request.readableBytesView, as: UTF8.self)))
    }
    router.register("/test.Echo/Never") { _, _ in }
    router.register("/test.Echo/Big") { request, promise in
      promise.succeed(ByteBuffer(repeating: 7, count: Int(String(decoding: request.readableBytesView, as: UTF8.self))!))
    }
    router.register("/test.Echo/Slow") { request, promise in
      promise.futureResult.eventLoop.scheduleTask(in: .milliseconds(20)) { promise.succeed(request) }
    }
    return router
  }

  func withServer(
    maxReceive: Int = 4 << 20, _ body: (String, LeanGRPCServer) async throws -> Void
  ) async throws {
    let path = "/tmp/dhg-\(UUID().uuidString.prefix(8)).sock"
    let server = try await LeanGRPCServer.bind(
      unixSocket: path, router: Self.router(), maxReceiveMessageSize: maxReceive)
    defer {
      server.close()
      unlink(path)
    }
    try await body(path, server)
  }

  @Test("a unary call round-trips its message")
  func echo() async throws {
    try await withServer { path, _ in
      let client = try await LeanGRPCClient.connect(unixSocket: path)
      let reply = try await client.unary(
        path: "/test.Echo/Echo", request: ByteBuffer(string: "hello"), timeout: .seconds(5),
        metadata: [("x-deckhand-test", "yes")])
      #expect(String(buffer: reply) == "hello")
      await client.close()
    }
  }

  @Test("a router's passed headers reach its handlers (and their tasks) as CallHeaders; others never do")
  func passedHeaders() async throws {
    for passes in [true, false] {
      var router = LeanGRPCRouter()
      if passes { router.passedHeaders = CallHeaders.traceContext }
      // Answers the headers it sees, from a task it starts (as the SDK's
      // handlers run).
      router.register("/test.Echo/Headers") { _, promise in
        Task {
          let seen = CallHeaders.current.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
          promise.succeed(ByteBuffer(string: seen))
        }
      }
      let path = "/tmp/dhg-\(UUID().uuidString.prefix(8)).sock"
      let server = try await LeanGRPCServer.bind(unixSocket: path, router: router)
      defer {
        server.close()
        unlink(path)
      }
      let client = try await LeanGRPCClient.connect(unixSocket: path)
      let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
      let reply = try await client.unary(
        path: "/test.Echo/Headers", request: ByteBuffer(string: ""), timeout: .seconds(5),
        metadata: [("traceparent", traceparent), ("x-secret", "no")])
      #expect(String(buffer: reply) == (passes ? "traceparent=\(traceparent)" : ""))
      // A call without them sees none.
      let bare = try await client.unary(path: "/test.Echo/Headers", request: ByteBuffer(), timeout: .seconds(5))
      #expect(String(buffer: bare) == "")
      await client.close()
    }
  }

  @Test("an error status and its percent-encoded message arrive in a trailers-only response")
  func errorStatus() async throws {
    try await withServer { path, _ in
      let client = try await LeanGRPCClient.connect(unixSocket: path)
      let text = "no: 100% broken\nreally"
      await #expect(throws: GRPCCallError(.failedPrecondition, text)) {
        try await client.unary(path: "/test.Echo/Fail", request: ByteBuffer(string: text), timeout: .seconds(5))
      }
      await #expect(throws: GRPCCallError(.unimplemented, "method /test.Echo/Missing is not implemented")) {
        try await client.unary(path: "/test.Echo/Missing", request: ByteBuffer(), timeout: .seconds(5))
      }
      await client.close()
    }
  }

  @Test("the deadline ends a call that gets no answer")
  func deadline() async throws {
    try await withServer { path, _ in
      let client = try await LeanGRPCClient.connect(unixSocket: path)
      let begin = ContinuousClock.now
      await #expect {
        try await client.unary(path: "/test.Echo/Never", request: ByteBuffer(), timeout: .milliseconds(200))
      } throws: { error in
        (error as? GRPCCallError)?.code == .deadlineExceeded
      }
      let elapsed = begin.duration(to: .now)
      #expect(elapsed >= .milliseconds(150) && elapsed < .seconds(3), "\(elapsed)")
      // The connection still works afterwards.
      let reply = try await client.unary(
        path: "/test.Echo/Echo", request: ByteBuffer(string: "x"), timeout: .seconds(5))
      #expect(String(buffer: reply) == "x")
      await client.close()
    }
  }

  @Test("a call with an earlier deadline than those in flight ends at its own, and the others at theirs")
  func earlierDeadline() async throws {
    try await withServer { path, _ in
      let client = try await LeanGRPCClient.connect(unixSocket: path)
      let begin = ContinuousClock.now
      async let long: Duration = {
        _ = try? await client.unary(path: "/test.Echo/Never", request: ByteBuffer(), timeout: .milliseconds(1500))
        return begin.duration(to: .now)
      }()
      try await Task.sleep(for: .milliseconds(50))
      await #expect {
        try await client.unary(path: "/test.Echo/Never", request: ByteBuffer(), timeout: .milliseconds(200))
      } throws: { error in
        (error as? GRPCCallError)?.code == .deadlineExceeded
      }
      let short = begin.duration(to: .now)
      #expect(short < .milliseconds(1200), "the shorter deadline waited for the longer one: \(short)")
      let longEnded = await long
      #expect(longEnded >= .milliseconds(1400) && longEnded < .seconds(5), "\(longEnded)")
      await client.close()
    }
  }

  @Test("messages larger than the flow-control window go through, both ways")
  func large() async throws {
    try await withServer { path, _ in
      let client = try await LeanGRPCClient.connect(unixSocket: path, maxReceiveMessageSize: 8 << 20)
      let big = ByteBuffer(repeating: 3, count: 3 << 20)
      let reply = try await client.unary(path: "/test.Echo/Echo", request: big, timeout: .seconds(20))
      #expect(reply == big)
      await client.close()
    }
  }

  @Test("large requests the server refuses early leave the connection's window open for the next calls")
  func refusedLargeRequests() async throws {
    try await withServer { path, _ in
      let client = try await LeanGRPCClient.connect(unixSocket: path, maxReceiveMessageSize: 8 << 20)
      let big = ByteBuffer(repeating: 5, count: 3 << 20)
      // Three times the connection window, each answered (unimplemented,
      // then RST_STREAM) before the client has sent it all.
      for _ in 0..<3 {
        await #expect {
          try await client.unary(path: "/test.Echo/Missing", request: big, timeout: .seconds(20))
        } throws: { ($0 as? GRPCCallError)?.code == .unimplemented }
      }
      let reply = try await client.unary(path: "/test.Echo/Echo", request: big, timeout: .seconds(20))
      #expect(reply == big)
      await client.close()
    }
  }

  @Test("size limits are enforced with resourceExhausted on both sides")
  func sizeLimits() async throws {
    try await withServer(maxReceive: 1024) { path, _ in
      let client = try await LeanGRPCClient.connect(unixSocket: path, maxReceiveMessageSize: 1000)
      await #expect {
        try await client.unary(path: "/test.Echo/Big", request: ByteBuffer(string: "5000"), timeout: .seconds(5))
      } throws: { ($0 as? GRPCCallError)?.code == .resourceExhausted }
      await #expect {
        try await client.unary(
          path: "/test.Echo/Echo", request: ByteBuffer(repeating: 1, count: 2000), timeout: .seconds(5))
      } throws: { ($0 as? GRPCCallError)?.code == .resourceExhausted }
      let small = try await client.unary(
        path: "/test.Echo/Big", request: ByteBuffer(string: "10"), timeout: .seconds(5))
      #expect(small.readableBytes == 10)
      await client.close()
    }
  }

  @Test("many concurrent calls share one connection")
  func concurrent() async throws {
    try await withServer { path, _ in
      let client = try await LeanGRPCClient.connect(unixSocket: path)
      let replies = try await withThrowingTaskGroup(of: String.self) { group in
        for index in 0..<300 {
          group.addTask {
            String(
              buffer: try await client.unary(
                path: "/test.Echo/Slow", request: ByteBuffer(string: "\(index)"), timeout: .seconds(20)))
          }
        }
        var all: [String] = []
        for try await reply in group { all.append(reply) }
        return all
      }
      #expect(Set(replies) == Set((0..<300).map(String.init)))
      await client.close()
    }
  }

  @Test("a call after the server went away fails fast instead of hanging")
  func serverGone() async throws {
    let path = "/tmp/dhg-\(UUID().uuidString.prefix(8)).sock"
    let server = try await LeanGRPCServer.bind(unixSocket: path, router: Self.router())
    let client = try await LeanGRPCClient.connect(unixSocket: path)
    _ = try await client.unary(path: "/test.Echo/Echo", request: ByteBuffer(string: "a"), timeout: .seconds(5))
    server.close()
    unlink(path)
    // Closing the listener keeps the connection; kill the plugin's way: a
    // new server-less socket means this connection ends when the peer does.
    await client.close()
    await #expect {
      try await client.unary(path: "/test.Echo/Echo", request: ByteBuffer(string: "b"), timeout: .seconds(5))
    } throws: { ($0 as? GRPCCallError)?.code == .unavailable }
  }

  @Test("a cancelled caller ends its call at once")
  func cancellation() async throws {
    try await withServer { path, _ in
      let client = try await LeanGRPCClient.connect(unixSocket: path)
      let task = Task {
        try await client.unary(path: "/test.Echo/Never", request: ByteBuffer(), timeout: .seconds(30))
      }
      try await Task.sleep(for: .milliseconds(50))
      let begin = ContinuousClock.now
      task.cancel()
      await #expect { try await task.value } throws: { ($0 as? GRPCCallError)?.code == .cancelled }
      // Far from the call's 30 s deadline (loose: a busy two-core machine).
      #expect(begin.duration(to: .now) < .seconds(10))
      await client.close()
    }
  }
}

@Suite("Interop: every host transport with every plugin server")
struct TransportInteropTests {
  enum Server: String, CaseIterable {
    case swiftLean = "Swift SDK, lean server"
    case swiftGRPCSwift = "Swift SDK, grpc-swift-2 server"
    case goPlugin = "grpc-go under go-plugin"
    case python = "Python grpcio"
  }

  func manifest(_ server: Server, in workspace: borrowing TestWorkspace) throws -> PluginManifest {
    switch server {
    case .swiftLean:
      return try workspace.manifest(["name": "lean", "version": "1", "entrypoint": Fixtures.echo])
    case .swiftGRPCSwift:
      return try workspace.manifest([
        "name": "grpcswift", "version": "1", "entrypoint": "\(Fixtures.binDirectory)/deckhand-bench-plugin-grpc-swift",
      ])
    case .goPlugin:
      let binary = "\(Fixtures.goPeerBin)/goplugin-plugin"
      try #require(FileManager.default.isExecutableFile(atPath: binary), "build ../shared/peers/goplugin first")
      return try workspace.manifest([
        "name": "gapeer", "version": "1", "entrypoint": binary, "protocol": "go-plugin",
        "handshake": ["cookie_key": "GAPEER_PLUGIN_COOKIE", "cookie_value": "guest-agent-plugin-v1"],
      ])
    case .python:
      return try PluginManifest.load(path: "\(Fixtures.packageRoot)/Examples/PythonEcho/plugin.json")
    }
  }

  @Test(
    "the conformance check passes",
    arguments: [true, false], Server.allCases)
  func conformance(lean: Bool, server: Server) async throws {
    let workspace = try TestWorkspace()
    let manifest = try manifest(server, in: workspace)
    let transport: any PluginTransport = lean ? LeanPluginTransport() : GRPCPluginTransport()
    let report = await PluginConformanceCheck(launcher: workspace.launcher, transport: transport).run(manifest)
    #expect(report.ok, "\(report.checks.filter { !$0.ok })")
  }

  @Test("the lean client calls a plain grpc-go server, many times (grpc-go pings with every response)")
  func plainGRPCGo() async throws {
    let binary = "\(Fixtures.goPeerBin)/grpc-server"
    try #require(FileManager.default.isExecutableFile(atPath: binary), "build ../shared/peers/goplugin first")
    let workspace = try TestWorkspace()
    let socket = "\(workspace.root)/go.sock"
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = ["-socket", socket]
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    defer { process.terminate() }
    #expect(await eventually { FileManager.default.fileExists(atPath: socket) })
    try await LeanPluginTransport().withConnection(to: .unix(path: socket)) { connection in
      let status = try await connection.getStatus(data: "ping", timeout: .seconds(5))
      #expect(status.results == ["ping"])
      // NIO's default guard allows 200 PINGs in 30 s; grpc-go sends one per
      // response, so 1000 calls prove the client tolerates it.
      for index in 0..<1000 {
        let answer = try await connection.getStatus(data: "\(index)", timeout: .seconds(5))
        #expect(answer.results == ["\(index)"])
      }
      var payload = Google_Protobuf_Any()
      payload.typeURL = "type.googleapis.com/x"
      payload.value = Data(repeating: 1, count: 200_000)
      try await connection.apply(payload, timeout: .seconds(5))
    }
  }

  @Test("a Python grpcio client calls the SDK's lean server")
  func pythonClient() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest(["name": "echo-py", "version": "1", "entrypoint": Fixtures.echo])
    let plugin = try await workspace.launcher.launch(manifest)
    guard case .unix(let socket) = plugin.address else {
      await plugin.kill()
      Issue.record("not a unix socket")
      return
    }
    let result = try await runCommand(
      "/usr/bin/python3", ["\(Fixtures.packageRoot)/Tests/Fixtures/python/client.py", socket])
    #expect(result.status == 0, "\(result.stderr)")
    let lines = result.stdout.split(separator: "\n").map(String.init)
    #expect(lines.first == "start ok")
    #expect(
      lines.contains(
        "status code=0 results=state_directory=/tmp/python-client-state|config=string:from python|applies=0 bytes=0 last_type="
      ))
    #expect(lines.contains("status-data hello from grpcio"))
    #expect(
      lines.contains {
        $0.hasPrefix("after-apply ")
          && $0.contains("applies=1 bytes=65536 last_type=type.googleapis.com/deckhand.test.Blob")
      })
    #expect(lines.contains("unknown UNIMPLEMENTED"))
    #expect(lines.last == "stop ok")
    #expect(await plugin.process.waitForExit(timeout: .seconds(5)) != nil, "the plugin should exit after Stop")
    await plugin.kill()
  }
}
