internal import CDeckhandSystem
package import DeckhandCore
internal import Foundation

#if canImport(Glibc)
  internal import Glibc
#endif

/// A client of the command socket, as the guest agent's own: connect,
/// write the request, read the response until the agent closes.
///
/// Blocking: call it from a thread of its own or a command-line tool, not
/// from a task on the cooperative pool in a loop.
package enum CommandClient {
  /// Sends `request` and returns the raw response.
  ///
  /// - Parameters:
  ///   - halfClose: Shut down the writing side after the request, so that
  ///     the agent knows nothing more is coming.
  ///   - timeout: For connecting, writing and the whole response.
  /// - Throws: ``DeckhandCore/DeckhandError`` (`callFailed`) naming the
  ///   socket when it cannot be reached or answers nothing.
  package static func send(
    _ request: [UInt8], socket path: String, timeout: Duration = .seconds(60), halfClose: Bool = true
  ) throws -> [UInt8] {
    let fd = deckhand_unix_connect(path)
    guard fd >= 0 else {
      throw DeckhandError(
        .callFailed,
        "cannot reach the agent's command socket \(path): \(String(cString: strerror(-fd))); is `deckhand agent` running? (--socket)"
      )
    }
    defer { close(fd) }
    _ = deckhand_set_timeouts(fd, Int64(timeout.inSeconds * 1e6))
    var offset = 0
    while offset < request.count {
      let written = request[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      if written < 0 {
        if errno == EINTR { continue }
        // The agent may answer (102 for an oversized request) and close
        // before reading all of it; its answer is still there to read.
        break
      }
      offset += written
    }
    if halfClose { shutdown(fd, Int32(SHUT_WR)) }
    var response: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
      let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      if count > 0 {
        response.append(contentsOf: chunk[0..<count])
      } else if count == 0 {
        break
      } else if errno == EINTR {
        continue
      } else {
        let reason = errno == EAGAIN ? "no answer within \(timeout)" : String(cString: strerror(errno))
        throw DeckhandError(.callFailed, "reading the answer from \(path) failed: \(reason)")
      }
    }
    return response
  }

  /// Sends a request object and decodes the response object.
  package static func send(_ request: [String: JSONValue], socket path: String, timeout: Duration = .seconds(60))
    throws -> [String: JSONValue]
  {
    guard let bytes = JSONValue.object(request).serialized() else {
      throw DeckhandError(.configurationInvalid, "the request holds a number JSON cannot express")
    }
    let response = try send(bytes, socket: path, timeout: timeout)
    guard case .object(let object) = try? JSONValue.parse(response) else {
      throw DeckhandError(
        .callFailed,
        "the agent at \(path) answered something that is not a JSON object: \(String(decoding: response.prefix(200), as: UTF8.self))"
      )
    }
    return object
  }
}
