/// A plugin package, stored content-addressed.
package struct ArtifactRecord: Codable, Sendable, Hashable {
  package var digest: String
  package var name: String
  package var version: String
  package var platform: String
  package var size: Int64
  package var createdMs: Int64

  package init(digest: String, name: String, version: String, platform: String, size: Int64, createdMs: Int64) {
    self.digest = digest
    self.name = name
    self.version = version
    self.platform = platform
    self.size = size
    self.createdMs = createdMs
  }
}
