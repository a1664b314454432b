package import DeckhandCore
package import Foundation

/// Plain HTTP/1.x on loopback for tests: writes a request as given (so a
/// test can send a malformed or hostile one) and reads the answer until
/// the server closes the connection or `timeout` passes.
package enum HTTPProbe {
  package struct Answer: Sendable {
    /// The status code (0 when nothing parsable came back).
    package var status: Int
    package var head: String
    package var body: String
  }

  /// `GET path` with `Connection: close`.
  package static func get(port: Int, _ path: String, timeout: Duration = .seconds(5)) async throws -> Answer {
    try await send(port: port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", timeout: timeout)
  }

  /// Sends `raw` and reads until the server closes or `timeout` passes,
  /// or, with `oneAnswer`, until the first answer is whole by its
  /// Content-Length (some servers, chromedriver among them, say
  /// `Connection: close` and keep the connection open).
  package static func send(
    port: Int, _ raw: String, timeout: Duration = .seconds(5), oneAnswer: Bool = false
  ) async throws -> Answer {
    try await onThread { try exchange(port: port, Array(raw.utf8), timeout: timeout, oneAnswer: oneAnswer) }
  }

  /// Connects and sends nothing: whether the server closed the
  /// connection within `within`.
  package static func closesSilentConnection(port: Int, within: Duration) async throws -> Bool {
    try await onThread {
      let fd = try connect(port)
      defer { close(fd) }
      try setTimeout(fd, within)
      var byte: UInt8 = 0
      // 0: the server closed; -1 with EAGAIN: the timeout passed first.
      return read(fd, &byte, 1) == 0
    }
  }

  private static func exchange(port: Int, _ bytes: [UInt8], timeout: Duration, oneAnswer: Bool) throws -> Answer {
    let fd = try connect(port)
    defer { close(fd) }
    try setTimeout(fd, timeout)
    var sent = 0
    while sent < bytes.count {
      let written = bytes[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
      guard written > 0 else { break }
      sent += written
    }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      let count = read(fd, &buffer, buffer.count)
      guard count > 0 else { break }
      received += buffer[..<count]
      if oneAnswer && isComplete(received) { break }
    }
    let text = String(decoding: received, as: UTF8.self)
    let parts = text.components(separatedBy: "\r\n\r\n")
    let head = parts.first ?? ""
    let status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    return Answer(status: status, head: head, body: parts.dropFirst().joined(separator: "\r\n\r\n"))
  }

  /// Whether `bytes` hold a whole answer: its head and as many body bytes
  /// as its Content-Length says (false without one: read to the close).
  private static func isComplete(_ bytes: [UInt8]) -> Bool {
    let separator: [UInt8] = [13, 10, 13, 10]
    guard let end = bytes.indices.dropLast(3).first(where: { Array(bytes[$0..<$0 + 4]) == separator }) else {
      return false
    }
    let head = String(decoding: bytes[..<end], as: UTF8.self).lowercased()
    guard
      let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
      let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
    else { return false }
    return bytes.count - (end + 4) >= length
  }

  /// A TCP connection to 127.0.0.1:`port` (the caller closes it).
  package static func connect(_ port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw DeckhandError(.callFailed, "socket: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let result = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard result == 0 else {
      close(fd)
      throw DeckhandError(.callFailed, "connect to 127.0.0.1:\(port): errno \(errno)")
    }
    return fd
  }

  private static func setTimeout(_ fd: Int32, _ timeout: Duration) throws {
    let micros = timeout.components.seconds * 1_000_000 + timeout.components.attoseconds / 1_000_000_000_000
    var value = timeval(tv_sec: Int(micros / 1_000_000), tv_usec: Int(micros % 1_000_000))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
  }
}
