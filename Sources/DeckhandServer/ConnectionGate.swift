package import DeckhandCore
package import Logging
internal import NIOCore
internal import Synchronization

/// The server's ``ConnectionBook``, shared by its event loops (which admit
/// and close connections) and its calls (which mark them authenticated).
///
/// Connections are known by the remote address text gRPC gives a call
/// (`ServerContext.remotePeer`, e.g. `ipv4:10.0.0.7:51234`), so a call can
/// vouch for the connection it came on.
package final class ConnectionGate: Sendable {
  private let book: Mutex<ConnectionBook>
  private let refusals = Atomic<Int>(0)
  private let logger: Logger

  package init(limits: ConnectionLimits, logger: Logger) {
    self.book = Mutex(ConnectionBook(limits: limits))
    self.limits = limits
    self.logger = logger
  }

  package let limits: ConnectionLimits

  /// The key and the address (IP) of a connection's remote end, in the
  /// form gRPC names it; nil for a channel without an IP peer.
  static func peer(of channel: any Channel) -> (key: String, address: String)? {
    switch channel.remoteAddress {
    case .v4(let address)?:
      let host = address.host
      return ("ipv4:\(host):\(channel.remoteAddress?.port ?? 0)", host)
    case .v6(let address)?:
      let host = address.host
      return ("ipv6:[\(host)]:\(channel.remoteAddress?.port ?? 0)", host)
    default:
      return nil
    }
  }

  func accept(key: String, address: String) -> ConnectionBook.Admission {
    let admission = book.withLock { book in
      let now = NIODeadline.now().uptimeNanoseconds
      if book.addressCount > 4096, book.addressCount % 1024 == 0 { book.forgetIdle(now: now) }
      return book.accept(key: key, address: address, now: now)
    }
    if case .refuse(let refusal) = admission {
      // One line per 1,000 refusals: a flood must not fill the log too.
      let count = refusals.add(1, ordering: .relaxed).newValue
      if count == 1 || count % 1000 == 0 {
        logger.warning(
          "refusing connections", metadata: ["peer": "\(key)", "reason": "\(refusal)", "refused_so_far": "\(count)"])
      }
    }
    return admission
  }

  /// A call on the connection `peer` carried a good credential.
  package func authenticated(peer: String) {
    book.withLock { $0.authenticated(key: peer) }
  }

  func isAuthenticated(key: String) -> Bool {
    book.withLock { $0.isAuthenticated(key: key) }
  }

  func closed(key: String) {
    book.withLock { $0.closed(key: key) }
  }
}
