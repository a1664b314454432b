package import DeckhandCore
package import DeckhandProtocol

extension Deckhand_Control_V1_Role {
  /// The role of a ``DeckhandCore/TokenRole``, for the API.
  package init(_ role: TokenRole) {
    switch role {
    case .worker: self = .worker
    case .operator: self = .operator
    case .viewer: self = .viewer
    case .operatorInvite: self = .operatorInvite
    case .viewerInvite: self = .viewerInvite
    case .operatorSession: self = .operatorSession
    case .viewerSession: self = .viewerSession
    }
  }

  /// The ``DeckhandCore/TokenRole`` this names; nil for one this build
  /// does not know.
  package var tokenRole: TokenRole? {
    TokenRole.allCases.first { Self($0) == self }
  }

  /// The role's name, as tokens are stored and listed (`viewer-invite`, …).
  package var name: String {
    tokenRole?.rawValue ?? "role\(rawValue)"
  }
}
