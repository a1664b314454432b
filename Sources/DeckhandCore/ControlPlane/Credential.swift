/// The secrets of the control plane, as text.
///
/// - A token (`DHTKN-1-<ca digest>-<id>-<secret>`) joins a worker or
///   authorizes an operator. The CA digest (SHA-256 of the CA certificate's
///   DER, 64 hex digits) lets the holder trust the server without a prior
///   copy of its CA, as SwarmKit's `SWMTKN-1-<ca digest>-<secret>`.
/// - A node credential (`DHNODE-<node id>-<secret>`) is what a joined
///   agent presents from then on.
///
/// The server stores only a hash of each secret.
package enum Credential: Hashable, Sendable {
  case token(caDigest: String, id: String, secret: String)
  case node(id: String, secret: String)

  /// Reads a token or node credential.
  ///
  /// - Throws: ``DeckhandError`` (`tokenInvalid`) saying what is wrong,
  ///   never echoing the secret.
  package static func parse(_ text: String) throws(DeckhandError) -> Credential {
    let parts = text.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
    switch parts.first {
    case "DHTKN":
      guard parts.count == 5, parts[1] == "1" else {
        throw DeckhandError(
          .tokenInvalid, "not a Deckhand token: expected DHTKN-1-<ca digest>-<id>-<secret> (\(parts.count) parts)")
      }
      guard parts[2].count == 64, parts[2].allSatisfy(\.isHexDigit) else {
        throw DeckhandError(.tokenInvalid, "the token's CA digest is not 64 hex digits")
      }
      guard Self.isSimple(parts[3]), Self.isSimple(parts[4]) else {
        throw DeckhandError(.tokenInvalid, "the token's id or secret holds characters a token never has")
      }
      return .token(caDigest: parts[2].lowercased(), id: parts[3], secret: parts[4])
    case "DHNODE":
      guard parts.count == 3, Self.isSimple(parts[1]), Self.isSimple(parts[2]) else {
        throw DeckhandError(.tokenInvalid, "not a node credential: expected DHNODE-<node id>-<secret>")
      }
      return .node(id: parts[1], secret: parts[2])
    default:
      throw DeckhandError(.tokenInvalid, "not a Deckhand token (they start with DHTKN-1-)")
    }
  }

  /// The credential as text.
  package var text: String {
    switch self {
    case .token(let digest, let id, let secret): "DHTKN-1-\(digest)-\(id)-\(secret)"
    case .node(let id, let secret): "DHNODE-\(id)-\(secret)"
    }
  }

  /// The id the server looks the credential up by.
  package var id: String {
    switch self {
    case .token(_, let id, _), .node(let id, _): id
    }
  }

  /// The secret part.
  package var secret: String {
    switch self {
    case .token(_, _, let secret), .node(_, let secret): secret
    }
  }

  private static func isSimple(_ part: String) -> Bool {
    !part.isEmpty && part.count <= 128
      && part.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) }
  }
}
