/// The desired state for one plugin: a version, where (a selector), with
/// what config.
package struct DeploymentRecord: Codable, Sendable, Hashable {
  package var id: String
  package var plugin: String
  package var version: String
  package var artifactDigest: String
  package var artifactSize: Int64
  package var selector: [String: String]
  package var configJSON: String
  package var maxFailures: Int
  package var state: DeploymentState
  package var createdMs: Int64

  package init(
    id: String, plugin: String, version: String, artifactDigest: String, artifactSize: Int64,
    selector: [String: String], configJSON: String, maxFailures: Int, state: DeploymentState, createdMs: Int64
  ) {
    self.id = id
    self.plugin = plugin
    self.version = version
    self.artifactDigest = artifactDigest
    self.artifactSize = artifactSize
    self.selector = selector
    self.configJSON = configJSON
    self.maxFailures = maxFailures
    self.state = state
    self.createdMs = createdMs
  }
}
