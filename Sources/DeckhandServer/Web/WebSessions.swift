internal import Crypto
package import DeckhandCore
internal import Foundation
internal import Synchronization

/// The web UI's sign-in sessions, in this replica's memory: a random id
/// (the cookie) → the token that signed in, its CSRF secret and when the
/// session ends.
///
/// The token is checked again on every request (``ControlPlane/authenticate(_:)``):
/// a revoked or expired token ends its sessions at once.
package final class WebSessions: Sendable {
  package struct Session: Sendable {
    /// `Bearer TOKEN`, as the gRPC API takes it.
    package let authorization: String
    /// What every state-changing form must carry back.
    package let csrf: String
    package let expires: ContinuousClock.Instant
  }

  /// How long a session lasts: 12 hours, then sign in again.
  package static let lifetime: Duration = .seconds(12 * 3600)
  /// At most this many sessions are kept; past it, the oldest go.
  package static let maxSessions = 10_000

  private let sessions = Mutex<[String: Session]>([:])

  package init() {}

  /// A new session for `authorization`; returns its id.
  package func open(authorization: String, now: ContinuousClock.Instant = .now) -> String {
    let id = Self.random()
    let session = Session(authorization: authorization, csrf: Self.random(), expires: now + Self.lifetime)
    sessions.withLock { sessions in
      if sessions.count >= Self.maxSessions {
        sessions = sessions.filter { $0.value.expires > now }
        if sessions.count >= Self.maxSessions,
          let oldest = sessions.min(by: { $0.value.expires < $1.value.expires })?.key
        {
          sessions[oldest] = nil
        }
      }
      sessions[id] = session
    }
    return id
  }

  /// The live session `id` names; nil when unknown or ended.
  package func session(_ id: String?, now: ContinuousClock.Instant = .now) -> Session? {
    guard let id, !id.isEmpty else { return nil }
    return sessions.withLock { sessions in
      guard let session = sessions[id] else { return nil }
      guard session.expires > now else {
        sessions[id] = nil
        return nil
      }
      return session
    }
  }

  /// Ends session `id`.
  package func close(_ id: String?) {
    guard let id else { return }
    _ = sessions.withLock { $0.removeValue(forKey: id) }
  }

  /// Whether `given` is `session`'s CSRF secret (compared in constant time).
  package static func csrfMatches(_ given: String?, _ session: Session) -> Bool {
    guard let given else { return false }
    let left = Array(given.utf8)
    let right = Array(session.csrf.utf8)
    guard left.count == right.count else { return false }
    var difference: UInt8 = 0
    for index in left.indices { difference |= left[index] ^ right[index] }
    return difference == 0
  }

  /// 32 random bytes, hex.
  private static func random() -> String {
    SymmetricKey(size: .bits256).withUnsafeBytes { bytes in bytes.map { String(format: "%02x", $0) }.joined() }
  }
}
