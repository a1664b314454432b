/// What a token lets its holder do. Stored as its raw text.
package enum TokenRole: String, Sendable, Hashable, Codable, CaseIterable {
  /// Joins an agent once, as a new node.
  case worker
  /// Runs the operator's API (`deckhand nodes`, `deploy`, `jobs`, …).
  case `operator`
  /// Reads what an operator reads (not tokens or snapshots) and changes
  /// nothing, in the API and the web UI alike.
  case viewer
  /// An invite: good once, for a login token of the operator role.
  case operatorInvite = "operator-invite"
  /// An invite: good once, for a login token of the viewer role.
  case viewerInvite = "viewer-invite"
  /// A web UI session signed in with an operator's token (the cookie);
  /// good only for the web UI, and only while that token is.
  case operatorSession = "operator-session"
  /// A web UI session signed in with a viewer's token.
  case viewerSession = "viewer-session"

  /// The role an invite's login token gets; nil for tokens that are not
  /// invites.
  package var invited: TokenRole? {
    switch self {
    case .operatorInvite: .operator
    case .viewerInvite: .viewer
    case .worker, .operator, .viewer, .operatorSession, .viewerSession: nil
    }
  }

  /// The invite that leads to this role; nil for roles no invite gives.
  package var invite: TokenRole? {
    switch self {
    case .operator: .operatorInvite
    case .viewer: .viewerInvite
    case .worker, .operatorInvite, .viewerInvite, .operatorSession, .viewerSession: nil
    }
  }

  /// The role a web session acts with; nil for tokens that are not
  /// sessions.
  package var sessionOf: TokenRole? {
    switch self {
    case .operatorSession: .operator
    case .viewerSession: .viewer
    case .worker, .operator, .viewer, .operatorInvite, .viewerInvite: nil
    }
  }

  /// The web session role for signing in with this role; nil for roles
  /// that cannot sign in.
  package var session: TokenRole? {
    switch self {
    case .operator: .operatorSession
    case .viewer: .viewerSession
    case .worker, .operatorInvite, .viewerInvite, .operatorSession, .viewerSession: nil
    }
  }
}
