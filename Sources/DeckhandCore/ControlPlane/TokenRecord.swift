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
