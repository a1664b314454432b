import DeckhandCore
import DeckhandPluginHost
import Foundation
import Testing

@testable import DeckhandAgent

#if canImport(Glibc)
  import Glibc
#endif

/// The accepting thread's own answers, driven on socket pairs: the server
/// end is what `accept` would have returned.
@Suite("Command acceptor: whole requests for immediate handlers answered on the accepting thread")
struct CommandAcceptorTests {
  /// A connected pair: (client, server).
  private func pair() throws -> (Int32, Int32) {
    var fds: [Int32] = [0, 0]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
      throw DeckhandError(.internalError, "socketpair: \(errno)")
    }
    return (fds[0], fds[1])
  }

  private func write(_ fd: Int32, _ text: String) {
    let bytes = Array(text.utf8)
    #expect(bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count)
  }

  /// Everything readable on `fd` now (it must be non-empty) and until EOF.
  private func readAll(_ fd: Int32) -> [UInt8] {
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
      let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      if count <= 0 { return out }
      out += chunk[0..<count]
    }
  }

  private func registry() throws -> CommandRegistry {
    let registry = CommandRegistry()
    try registry.register("now", immediate: { _ in ["Answer": .number(42)] })
    try registry.register("big", immediate: { _ in ["Blob": .string(String(repeating: "x", count: 4 << 20))] })
    try registry.register("wait") { _ in
      await Task.yield()
      return ["Waited": .bool(true)]
    }
    return registry
  }

  @Test("a whole request for an immediate handler is read, answered and closed here")
  func answeredHere() throws {
    let registry = try registry()
    let (client, server) = try pair()
    defer { close(client) }
    write(client, #"{"Command": "now"}"#)
    var buffer = [UInt8](repeating: 0, count: CommandAcceptor.peekSize)
    #expect(CommandAcceptor.answer(server, registry: registry, buffer: &buffer) == .answered)
    let response = try JSONValue.parse(readAll(client))
    #expect(response == .object(["Answer": .number(42), "Status": .number(0), "StatusMessage": .string("")]))
  }

  @Test(
    "anything else is left unread for a channel: partial, invalid, trailing bytes, a waiting or unknown handler, nothing yet, EOF",
    arguments: [
      #"{"Command": "no"#, "not json at all", #"{"Command": "now"} and more"#, #"{"Command": "wait"}"#,
      #"{"Command": "nobody"}"#, #"["now"]"#, #"{"Command": 7}"#, "", "EOF",
    ])
  func leftForAChannel(input: String) throws {
    let registry = try registry()
    let (client, server) = try pair()
    defer {
      close(client)
      close(server)
    }
    if input == "EOF" {
      shutdown(client, Int32(SHUT_WR))
    } else if !input.isEmpty {
      write(client, input)
    }
    var buffer = [UInt8](repeating: 0, count: CommandAcceptor.peekSize)
    #expect(CommandAcceptor.answer(server, registry: registry, buffer: &buffer) == .notHere)
    // Nothing was consumed: the channel reads the same bytes.
    var pending: Int32 = 0
    _ = ioctl(server, UInt(FIONREAD), &pending)
    #expect(Int(pending) == (input == "EOF" ? 0 : input.utf8.count))
  }

  @Test("a request longer than the peek goes to a channel")
  func longRequest() throws {
    let registry = try registry()
    let (client, server) = try pair()
    defer {
      close(client)
      close(server)
    }
    let padding = String(repeating: " ", count: CommandAcceptor.peekSize)
    write(client, #"{"Command": "now",\#(padding)"x": 1}"#)
    var buffer = [UInt8](repeating: 0, count: CommandAcceptor.peekSize)
    #expect(CommandAcceptor.answer(server, registry: registry, buffer: &buffer) == .notHere)
  }

  @Test("a response the client's queue cannot take at once: the rest is handed on, never waited for here")
  func unsentRest() throws {
    let registry = try registry()
    let (client, server) = try pair()
    defer { close(client) }
    write(client, #"{"Command": "big"}"#)
    var buffer = [UInt8](repeating: 0, count: CommandAcceptor.peekSize)
    let outcome = CommandAcceptor.answer(server, registry: registry, buffer: &buffer)
    guard case .unsent(let rest) = outcome else {
      Issue.record("expected a rest to hand on, got \(outcome)")
      close(server)
      return
    }
    // What a channel would do with the rest: write it, then close.
    let writer = Thread {
      _ = rest.withUnsafeBytes { bytes in
        var offset = 0
        while offset < bytes.count {
          let count = Glibc.write(server, bytes.baseAddress! + offset, bytes.count - offset)
          if count <= 0 { break }
          offset += count
        }
      }
      close(server)
    }
    writer.start()
    let received = readAll(client)
    guard case .object(let object) = try JSONValue.parse(received), case .string(let blob)? = object["Blob"] else {
      Issue.record("the response is not whole: \(received.count) bytes")
      return
    }
    #expect(blob.utf8.count == 4 << 20)
  }
}
