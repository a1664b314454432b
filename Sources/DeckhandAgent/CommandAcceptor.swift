internal import CDeckhandSystem
internal import DeckhandCore
package import DeckhandPluginHost
internal import Foundation
internal import NIOCore
internal import NIOPosix
internal import Synchronization

#if canImport(Glibc)
  internal import Glibc
#endif

/// Accepts the command socket's connections on a thread of its own, and
/// answers there the requests that need no waiting.
///
/// A connection of this protocol lives for one request, and most requests
/// (`agent.status`, `agent.config.getoption`) are answered from memory. With
/// a channel pipeline for every connection on an event loop, the agent
/// served 0.50–0.68x of what a bare one-thread accept/read/write/close
/// server serves (`deckhand-bench commands`, 16 clients): the channel, its
/// registration with epoll and its promises cost more than the request. So
/// this thread peeks at each new connection: a whole request for an
/// immediate handler, with nothing after it, is read, answered and closed
/// here with four system calls. Anything else (a partial, invalid or over-
/// size request, a handler that waits, a client that sent more) becomes a
/// NIO channel as before, with the peeked bytes still unread, so every
/// limit, deadline and error answer stays in ``CommandConnectionHandler``.
/// The thread never waits on a client: every read and write here is
/// non-blocking.
final class CommandAcceptor: Sendable {
  /// The listening socket.
  private let descriptor: Int32
  private let exit = ThreadExit()

  /// Serves a connection this thread did not finish: as a new request, or
  /// (`unsent` not nil) by writing the rest of its response and closing.
  typealias Adopt = @Sendable (_ connection: Int32, _ unsent: [UInt8]?) -> Void

  /// Starts accepting on `descriptor`, a listening unix socket.
  init(descriptor: Int32, registry: CommandRegistry, adopt: @escaping Adopt) {
    self.descriptor = descriptor
    let exit = self.exit
    Thread.detachNewThread {
      Self.acceptLoop(descriptor, registry: registry, adopt: adopt)
      exit.signal()
    }
  }

  /// Stops accepting and closes the listening socket once the thread is
  /// out of `accept`.
  func close() async {
    // Wakes the thread's accept with EINVAL.
    shutdown(descriptor, Int32(SHUT_RDWR))
    await exit.wait()
    Glibc.close(descriptor)
  }

  /// The largest request answered on this thread; longer ones go to a
  /// channel.
  static let peekSize = 4096

  private static func acceptLoop(
    _ listener: Int32, registry: CommandRegistry, adopt: Adopt
  ) {
    var buffer = [UInt8](repeating: 0, count: peekSize)
    while true {
      let connection = deckhand_accept(listener)
      if connection < 0 {
        switch -connection {
        case EINTR, ECONNABORTED, EPROTO:
          continue
        case EMFILE, ENFILE, ENOBUFS, ENOMEM:
          // Out of descriptors or memory: the backlog waits a moment
          // instead of this thread spinning on the same error.
          usleep(10_000)
          continue
        default:
          return  // EINVAL after close()'s shutdown.
        }
      }
      switch answer(connection, registry: registry, buffer: &buffer) {
      case .answered: break
      case .notHere: adopt(connection, nil)
      case .unsent(let rest): adopt(connection, rest)
      }
    }
  }

  /// What became of a connection on this thread.
  enum Outcome: Equatable {
    /// Answered and closed.
    case answered
    /// Nothing read: a channel serves it.
    case notHere
    /// Answered in part: a channel writes the rest.
    case unsent([UInt8])
  }

  /// Answers `connection` here if its whole request is already in and its
  /// handler is immediate.
  static func answer(_ connection: Int32, registry: CommandRegistry, buffer: inout [UInt8]) -> Outcome {
    let peeked = buffer.withUnsafeMutableBytes {
      recv(connection, $0.baseAddress, $0.count, Int32(MSG_PEEK | MSG_DONTWAIT))
    }
    guard peeked > 0 else { return .notHere }
    let bytes = buffer[0..<peeked]
    var scanner = CommandRequestScanner()
    guard case .complete(let length) = scanner.scan(bytes), length == peeked,
      let value = try? JSONValue.parse(bytes), case .object(let object) = value,
      let response = registry.answerIfImmediate(object)
    else { return .notHere }
    // Consumes what was peeked: the request, and nothing after it.
    let read = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, peeked, Int32(MSG_DONTWAIT)) }
    guard read == peeked else {
      // Not reached (the bytes were there); the connection cannot be
      // handed on with part of its request read.
      Glibc.close(connection)
      return .answered
    }
    let sent = response.withUnsafeBytes {
      send(connection, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
    }
    if sent == response.count || sent < 0 {
      // Written, or the client is gone: either way the connection is done.
      Glibc.close(connection)
      return .answered
    }
    // The client's receive queue is full: a channel writes the rest.
    return .unsent(Array(response[sent...]))
  }
}

/// Lets an async caller wait until a thread has ended.
private final class ThreadExit: Sendable {
  private let state = Mutex<(ended: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

  func signal() {
    let waiters = state.withLock { state in
      state.ended = true
      let waiters = state.waiters
      state.waiters = []
      return waiters
    }
    for waiter in waiters { waiter.resume() }
  }

  func wait() async {
    await withCheckedContinuation { continuation in
      let ended = state.withLock {
        if !$0.ended { $0.waiters.append(continuation) }
        return $0.ended
      }
      if ended { continuation.resume() }
    }
  }
}
