internal import Crypto
package import DeckhandCore
internal import Foundation

/// The web UI's sign-in sessions, kept as tokens in the server's store so
/// that every replica knows them: signing in with an operator's or a
/// viewer's token makes a session token (role `operator-session` or
/// `viewer-session`, label `parent` = the token that signed in, expiring
/// after ``lifetime``), and the cookie is that session token.
///
/// Every request checks the session token and its parent again
/// (``ControlPlane/token(id:)``, cached for 5 seconds): signing out
/// revokes the session token, and revoking or expiring the parent ends
/// all its sessions. A session token is good for nothing in the gRPC API.
/// The CSRF secret is derived from the cookie, so no replica stores it.
package struct WebSessions: Sendable {
  /// A signed-in visitor.
  package struct Session: Sendable {
    /// Who acts: `operatorToken` or `viewerToken` of the token that signed in.
    package let principal: Principal
    /// The session token's id.
    package let id: String
    /// What every state-changing form must carry back.
    package let csrf: String

    /// Whether this visitor may change anything (a viewer may not).
    package var mayOperate: Bool { principal.may(.operate) }
  }

  /// How long a session lasts: 12 hours, then sign in again.
  package static let defaultLifetime: Duration = .seconds(12 * 3600)

  let plane: ControlPlane
  package let lifetime: Duration

  package init(plane: ControlPlane, lifetime: Duration = Self.defaultLifetime) {
    self.plane = plane
    self.lifetime = lifetime
  }

  /// Signs in with `token` (an operator's or a viewer's); returns the
  /// cookie's value.
  ///
  /// - Throws: ``DeckhandError`` `tokenInvalid` or `permissionDenied`
  ///   saying why the token cannot sign in.
  package func open(token: String) async throws -> String {
    let principal = try await plane.authenticate("Bearer \(token)")
    let parent: String
    let role: TokenRole
    switch principal {
    case .operatorToken(let id):
      (parent, role) = (id, .operatorSession)
    case .viewerToken(let id):
      (parent, role) = (id, .viewerSession)
    case .inviteToken:
      throw DeckhandError(
        .permissionDenied, "an invite cannot sign in: turn it into a login token with `deckhand login --invite`")
    default:
      throw DeckhandError(
        .permissionDenied, "a \(principal.role) token cannot sign in: use an operator or viewer token")
    }
    let (_, cookie) = try await plane.createToken(
      role: role, ttl: lifetime, description: "web session", labels: ["parent": parent])
    return cookie
  }

  /// The live session `cookie` names; nil when unknown, signed out,
  /// expired, or when the token that signed in is no longer good.
  package func session(_ cookie: String?) async -> Session? {
    guard let cookie, !cookie.isEmpty,
      case .webSession(let id, let parent) = try? await plane.authenticate("Bearer \(cookie)"),
      let token = try? await plane.token(id: parent), token.refusal(atMs: nowMs()) == nil
    else { return nil }
    let principal: Principal
    switch token.role {
    case .operator: principal = .operatorToken(id: parent)
    case .viewer: principal = .viewerToken(id: parent)
    default: return nil
    }
    return Session(principal: principal, id: id, csrf: Self.csrf(cookie: cookie))
  }

  /// Signs `session` out: its token is revoked on every replica.
  package func close(_ session: Session) async {
    _ = try? await plane.revokeToken(id: session.id)
  }

  /// The CSRF secret of the session whose cookie is `cookie`:
  /// HMAC-SHA256 keyed with the cookie, which another site cannot read.
  static func csrf(cookie: String) -> String {
    let mac = HMAC<SHA256>.authenticationCode(
      for: Data("deckhand web csrf".utf8), using: SymmetricKey(data: Data(cookie.utf8)))
    return Data(mac).map { String(format: "%02x", $0) }.joined()
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

}
