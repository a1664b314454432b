package import DeckhandCore
internal import Logging

/// Invites and login tokens for people, after the token calls of Vagrant's
/// server protocol: an operator makes an invite, its holder turns it into
/// a login token of the invite's role once, and anyone signed in can make
/// another login token of their own role.
extension ControlPlane {
  /// How long an invite may be used when no TTL is given.
  package static let defaultInviteLifetime: Duration = .seconds(24 * 3600)

  /// An invite for a login token of `role` (operator or viewer).
  package func createInvite(role: TokenRole, ttl: Duration?, description: String) async throws -> (TokenRecord, String)
  {
    guard let invite = role.invite else {
      throw DeckhandError(
        .configurationInvalid,
        "an invite is for an operator or a viewer, not a \(role.rawValue); "
          + "make worker join tokens with `deckhand tokens create`")
    }
    return try await createToken(role: invite, ttl: ttl ?? Self.defaultInviteLifetime, description: description)
  }

  /// Uses up invite `id` and returns a login token of the role it was made
  /// for. Once only, also when replicas are asked at the same moment: the
  /// store's claim decides which call wins.
  package func convertInvite(id: String, role invite: TokenRole, description: String) async throws -> (
    TokenRecord, String
  ) {
    guard let role = invite.invited else {
      throw DeckhandError(.permissionDenied, "token \(id) is not an invite")
    }
    let claim = Self.randomText()
    guard try await store.claimSecret("invite-used/\(id)", value: claim) == claim else {
      throw DeckhandError(.tokenInvalid, "invite \(id) was used already; ask an operator for a new one")
    }
    _ = try await revokeToken(id: id)
    let note = description.isEmpty ? "login from invite \(id)" : description
    let login = try await createToken(role: role, ttl: nil, description: note)
    logger.info("invite used", metadata: ["invite": "\(id)", "token": "\(login.0.id)", "role": "\(role.rawValue)"])
    return login
  }

  /// A new login token of `principal`'s own role.
  package func createLoginToken(for principal: Principal, ttl: Duration?, description: String) async throws -> (
    TokenRecord, String
  ) {
    let role: TokenRole
    switch principal {
    case .operatorToken: role = .operator
    case .viewerToken: role = .viewer
    default:
      throw DeckhandError(
        .permissionDenied, "a \(principal.role) cannot make login tokens; sign in with an operator or viewer token")
    }
    return try await createToken(role: role, ttl: ttl, description: description)
  }
}
