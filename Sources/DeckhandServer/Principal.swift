package import DeckhandCore

/// Who is calling the server, known from the `authorization` metadata.
package enum Principal: Sendable, Hashable {
  /// A joined agent (a worker).
  case node(id: String)
  /// An operator token.
  case operatorToken(id: String)
  /// A worker join token, good only for Join.
  case joinToken(id: String)

  /// The role's name, for errors.
  package var role: String {
    switch self {
    case .node: "worker (node)"
    case .operatorToken: "operator"
    case .joinToken: "worker join token"
    }
  }
}
