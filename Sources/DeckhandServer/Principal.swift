package import DeckhandCore

/// Who is calling the server, known from the `authorization` metadata.
package enum Principal: Sendable, Hashable {
  /// A joined agent (a worker).
  case node(id: String)
  /// An operator token: reads and changes everything.
  case operatorToken(id: String)
  /// A viewer token: reads what an operator reads, except tokens and
  /// snapshots, and changes nothing.
  case viewerToken(id: String)
  /// A worker join token, good only for Join.
  case joinToken(id: String)
  /// An invite, good only for one ConvertInvite; `role` is what its login
  /// token may do.
  case inviteToken(id: String, role: TokenRole)
  /// A web UI session (its cookie), signed in with token `parent`; good
  /// for nothing in the gRPC API. ``WebSessions`` checks its parent.
  case webSession(id: String, parent: String)

  /// The role's name, for errors.
  package var role: String {
    switch self {
    case .node: "worker (node)"
    case .operatorToken: "operator"
    case .viewerToken: "viewer"
    case .joinToken: "worker join token"
    case .inviteToken: "invite token"
    case .webSession: "web session"
    }
  }

  /// Whether this caller may make a call of `access`.
  package func may(_ access: Access) -> Bool {
    switch (self, access) {
    case (.operatorToken, _): true
    case (.viewerToken, .read): true
    default: false
    }
  }

  /// What an operator-side call does, which decides who may make it.
  package enum Access: Sendable, Hashable {
    /// Reads the fleet, jobs, events or logs: operators and viewers.
    case read
    /// Changes something, or reads tokens or snapshots: operators only.
    case operate
  }
}
