/// A token: a worker join token or an operator token, stored hashed.
package struct TokenRecord: Codable, Sendable, Hashable {
  package var id: String
  package var role: TokenRole
  package var secretHash: String
  package var createdMs: Int64
  /// 0: never.
  package var expiresMs: Int64
  package var revoked: Bool
  package var description: String
  /// A worker token's labels: every node that joins with it gets them.
  package var labels: [String: String]
  /// Label keys a node joining with this worker token may set itself.
  package var allowedLabelKeys: [String]

  package init(
    id: String, role: TokenRole, secretHash: String, createdMs: Int64, expiresMs: Int64, revoked: Bool,
    description: String, labels: [String: String] = [:], allowedLabelKeys: [String] = []
  ) {
    self.labels = labels
    self.allowedLabelKeys = allowedLabelKeys
    self.id = id
    self.role = role
    self.secretHash = secretHash
    self.createdMs = createdMs
    self.expiresMs = expiresMs
    self.revoked = revoked
    self.description = description
  }
}

extension TokenRecord {
  /// Why the token may not be used at `nowMs` (revoked, or past its
  /// expiry), or nil when it may. Its secret is checked before this.
  package func refusal(atMs nowMs: Int64) -> String? {
    if revoked {
      return role.invited != nil
        ? "invite \(id) was used already or revoked; ask an operator for a new one" : "token \(id) was revoked"
    }
    if expiresMs > 0 && expiresMs < nowMs { return "token \(id) expired" }
    return nil
  }
}

extension TokenRecord {
  /// The labels of a node that joins with this token asking for `asked`:
  /// the token's own, plus those asked for whose key the token allows (a
  /// token's label wins over an asked one). Nothing else an agent says
  /// about itself becomes a label: selectors, job targets and config scopes
  /// match these, so a join token must not let a node claim any it likes.
  package func grantedLabels(asked: [String: String]) -> [String: String] {
    var granted = labels
    for (key, value) in asked where allowedLabelKeys.contains(key) && granted[key] == nil {
      granted[key] = value
    }
    return granted
  }
}
