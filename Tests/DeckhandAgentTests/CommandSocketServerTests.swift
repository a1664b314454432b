import CDeckhandSystem
import DeckhandCore
import DeckhandPluginHost
import DeckhandTestSupport
import Foundation
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import DeckhandAgent

/// A command socket on a throw-away path with a registry of test commands.
final class TestCommandSocket: Sendable {
  let root: String
  let path: String
  let registry = CommandRegistry()
  let server: CommandSocketServer

  init(
    timeout: Duration = .seconds(10), mode: UInt32 = 0o660, group: String? = nil,
    maxConnections: Int = CommandSocketServer.maxConnections
  ) async throws {
    root = "/tmp/dhcs-\(UUID().uuidString.prefix(8))"
    path = "\(root)/sub/commands.sock"
    try registry.register("echo") { request in request }
    try registry.register("fail") { _ in throw DeckhandError(.callFailed, "the handler broke: on purpose") }
    try registry.register("nan", immediate: { _ in ["Value": .number(.nan)] })
    try registry.register("slow") { _ in
      try await Task.sleep(for: .milliseconds(100))
      return ["Slept": .bool(true)]
    }
    server = try await CommandSocketServer.bind(
      path: path, mode: mode, group: group, registry: registry, timeout: timeout, maxConnections: maxConnections)
  }

  func close() async {
    await server.close()
    try? FileManager.default.removeItem(atPath: root)
  }

  /// Sends raw bytes on a thread; returns the decoded response object.
  func send(_ bytes: [UInt8], halfClose: Bool = true) async throws -> [String: JSONValue] {
    let path = self.path
    let response = try await onThread {
      try CommandClient.send(bytes, socket: path, timeout: .seconds(20), halfClose: halfClose)
    }
    guard case .object(let object) = try JSONValue.parse(response) else {
      Issue.record("not an object: \(String(decoding: response, as: UTF8.self))")
      return [:]
    }
    return object
  }

  func send(_ text: String, halfClose: Bool = true) async throws -> [String: JSONValue] {
    try await send(Array(text.utf8), halfClose: halfClose)
  }
}

@Suite("Command socket: the guest agent's command protocol")
struct CommandSocketServerTests {
  @Test("a handler's fields come back with Status 0")
  func success() async throws {
    let socket = try await TestCommandSocket()
    let response = try await socket.send(#"{"Command": "echo", "Field": [1, "two"]}"#)
    #expect(status(response) == 0)
    #expect(message(response) == "")
    #expect(response["Field"] == .array([.number(1), .string("two")]))
    await socket.close()
  }

  @Test("every error status, with the guest agent's messages")
  func errorCodes() async throws {
    let socket = try await TestCommandSocket()
    let cases: [(String, Int, String?)] = [
      (#"{"Command": "no.such"}"#, 101, "Could not find a handler for the requested command"),
      (#"{"Other": 1}"#, 101, nil),
      ("garbage", 102, "Could not parse valid JSON from request"),
      (#"{"Command": "echo", "#, 102, nil),  // truncated, then the client closes its side
      (#"["Command"]"#, 102, nil),
      (#"{"Command": 5}"#, 102, nil),
      (#"{"Command": "echo" "x": 1}"#, 102, nil),
      (#"{"Command": "fail"}"#, 105, "callFailed: the handler broke: on purpose"),
      (#"{"Command": "nan"}"#, 106, nil),
    ]
    for (request, expected, text) in cases {
      let response = try await socket.send(request)
      #expect(status(response) == expected, "\(request)")
      if let text {
        #expect(message(response).contains(text.replacingOccurrences(of: "callFailed: ", with: "")), "\(request)")
      }
    }
    await socket.close()
    // A client that connects and says nothing gets 104 after the deadline.
    let short = try await TestCommandSocket(timeout: .milliseconds(300))
    let begin = ContinuousClock.now
    let silent = try await short.send([], halfClose: false)
    #expect(status(silent) == 104)
    #expect(message(silent) == "Connection timeout before reading valid request")
    #expect(begin.duration(to: .now) >= .milliseconds(250))
    // So does one that stops half way.
    #expect(status(try await short.send(#"{"Command": "ec"#, halfClose: false)) == 104)
    await short.close()
  }

  @Test("a connection error is answered 103 and the server goes on")
  func connectionError() async throws {
    let socket = try await TestCommandSocket()
    // Reset the connection in the middle of a request (SO_LINGER 0).
    let path = socket.path
    try await onThread {
      let fd = deckhand_unix_connect(path)
      precondition(fd >= 0)
      _ = Array(#"{"Command": "#.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
      var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
      close(fd)
    }
    #expect(status(try await socket.send(#"{"Command": "echo"}"#)) == 0)
    await socket.close()
  }

  @Test("bytes after the request do not cost the client its answer")
  func trailingBytes() async throws {
    let socket = try await TestCommandSocket()
    for _ in 0..<50 {
      let response = try await socket.send(#"{"Command": "echo"} and then some more bytes"#, halfClose: false)
      #expect(status(response) == 0)
    }
    await socket.close()
  }

  @Test("a request over 1 MiB gets 102 and the connection is closed")
  func oversized() async throws {
    let socket = try await TestCommandSocket()
    let big = #"{"Command": "echo", "Pad": ""# + String(repeating: "a", count: (1 << 20) + 10) + #""}"#
    let response = try await socket.send(big, halfClose: false)
    #expect(status(response) == 102)
    // Just under the limit is served.
    let fits = #"{"Command": "echo", "Pad": ""# + String(repeating: "a", count: (1 << 20) - 100) + #""}"#
    #expect(status(try await socket.send(fits)) == 0)
    await socket.close()
  }

  @Test("handlers come and go at run time")
  func registerAtRunTime() async throws {
    let socket = try await TestCommandSocket()
    #expect(status(try await socket.send(#"{"Command": "late"}"#)) == 101)
    try socket.registry.register("late", immediate: { _ in ["Here": .bool(true)] })
    #expect(throws: DeckhandError.self) { try socket.registry.register("late") { _ in [:] } }
    #expect(try await socket.send(#"{"Command": "late"}"#)["Here"] == .bool(true))
    try socket.registry.unregister("late")
    #expect(throws: DeckhandError.self) { try socket.registry.unregister("late") }
    #expect(status(try await socket.send(#"{"Command": "late"}"#)) == 101)
    await socket.close()
  }

  @Test("the socket gets the configured mode and group, its folder is created, a live socket is not stolen")
  func modeAndGroup() async throws {
    let socket = try await TestCommandSocket(mode: 0o600, group: "daemon")
    var info = stat()
    #expect(stat(socket.path, &info) == 0)
    #expect(info.st_mode & 0o777 == 0o600)
    #expect(info.st_gid == getgrnam("daemon").pointee.gr_gid)
    await #expect(throws: DeckhandError.self) {
      _ = try await CommandSocketServer.bind(path: socket.path, registry: CommandRegistry())
    }
    await #expect(throws: DeckhandError.self) {
      _ = try await CommandSocketServer.bind(
        path: socket.root + "/x.sock", group: "no-such-group-here", registry: CommandRegistry())
    }
    await socket.close()
  }

  @Test("past the connection limit a connection is closed at once; when others close, requests are served again")
  func connectionLimit() async throws {
    let socket = try await TestCommandSocket(timeout: .seconds(30), maxConnections: 8)
    let path = socket.path
    let silent = try await onThread { (0..<8).map { _ in deckhand_unix_connect(path) } }
    #expect(silent.allSatisfy { $0 >= 0 })
    try await Task.sleep(for: .milliseconds(200))
    // The ninth: closed by the agent (EOF) long before any timeout.
    let begin = ContinuousClock.now
    let ninth = try await onThread { () -> Int in
      let fd = deckhand_unix_connect(path)
      defer { close(fd) }
      var byte: UInt8 = 0
      return read(fd, &byte, 1)
    }
    #expect(ninth == 0)
    #expect(begin.duration(to: .now) < .seconds(5))
    for fd in silent { close(fd) }
    try await Task.sleep(for: .milliseconds(200))
    #expect(status(try await socket.send(#"{"Command": "echo"}"#)) == 0)
    await socket.close()
  }

  @Test("silent clients do not hold up others; hundreds of clients are served at once")
  func concurrency() async throws {
    let socket = try await TestCommandSocket(timeout: .seconds(10))
    let path = socket.path
    // 50 clients connect and say nothing (for up to 10 s).
    let silent = try await onThread { (0..<50).map { _ in deckhand_unix_connect(path) } }
    #expect(silent.allSatisfy { $0 >= 0 })
    let begin = ContinuousClock.now
    #expect(status(try await socket.send(#"{"Command": "echo"}"#)) == 0)
    // Well before the silent ones time out (generous: the whole suite runs
    // beside it on two cores).
    #expect(begin.duration(to: .now) < .seconds(5))
    // 300 clients at once, a third of them on a handler that takes 100 ms.
    let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
      for index in 0..<300 {
        group.addTask {
          let command = index % 3 == 0 ? "slow" : "echo"
          return status(try await socket.send(#"{"Command": "\#(command)", "N": \#(index)}"#))
        }
      }
      return try await group.reduce(into: []) { $0.append($1) }
    }
    #expect(statuses.count == 300)
    #expect(statuses.allSatisfy { $0 == 0 })
    for fd in silent { close(fd) }
    await socket.close()
  }

  @Test("thousands of random byte strings each get a JSON answer with Status 101 to 106, and serving goes on")
  func fuzz() async throws {
    let socket = try await TestCommandSocket(timeout: .seconds(2))
    let path = socket.path
    let pieces = Array(#"{}[]":,\ "Command" "echo" "fail" true null 1e9 -0.5 \u00 \ud83d"#.utf8) + [0, 0xff, 0xc3, 10]
    let failures = try await withThrowingTaskGroup(of: [String].self) { group in
      for worker in 0..<4 {
        group.addTask {
          try await onThread {
            var generator = SystemRandomNumberGenerator()
            var failures: [String] = []
            for index in 0..<750 {
              let length = Int.random(in: 0..<200, using: &generator)
              var bytes: [UInt8] = index % 2 == 0 ? [UInt8(ascii: "{")] : []
              for _ in 0..<length {
                bytes.append(
                  Bool.random(using: &generator)
                    ? pieces.randomElement(using: &generator)! : UInt8.random(in: 0...255, using: &generator))
              }
              let response = try CommandClient.send(bytes, socket: path, timeout: .seconds(10))
              guard case .object(let object) = try? JSONValue.parse(response),
                case .number(let code) = object["Status"], (101...106).contains(Int(code)) || code == 0,
                case .string = object["StatusMessage"]
              else {
                failures.append("worker \(worker): \(bytes) -> \(String(decoding: response, as: UTF8.self))")
                continue
              }
            }
            return failures
          }
        }
      }
      return try await group.reduce(into: []) { $0 += $1 }
    }
    #expect(failures.isEmpty, "\(failures.prefix(3))")
    #expect(status(try await socket.send(#"{"Command": "echo"}"#)) == 0)
    await socket.close()
  }
}
