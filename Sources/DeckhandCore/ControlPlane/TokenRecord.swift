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

  package init(
    id: String, role: TokenRole, secretHash: String, createdMs: Int64, expiresMs: Int64, revoked: Bool,
    description: String
  ) {
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
    if revoked { return "token \(id) was revoked" }
    if expiresMs > 0 && expiresMs < nowMs { return "token \(id) expired" }
    return nil
  }
}
