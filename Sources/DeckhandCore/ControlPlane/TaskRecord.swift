/// One plugin on one node.
package struct TaskRecord: Codable, Sendable, Hashable {
  package var id: String
  package var deploymentId: String
  package var nodeId: String
  package var plugin: String
  package var version: String
  package var artifactDigest: String
  package var artifactSize: Int64
  package var configJSON: String
  package var state: TaskState
  package var message: String
  package var updatedMs: Int64
  /// False once the task is removed (replaced, or its node no longer
  /// matches): it is then history, not an assignment.
  package var active: Bool

  package init(
    id: String, deploymentId: String, nodeId: String, plugin: String, version: String, artifactDigest: String,
    artifactSize: Int64, configJSON: String, state: TaskState, message: String, updatedMs: Int64, active: Bool
  ) {
    self.id = id
    self.deploymentId = deploymentId
    self.nodeId = nodeId
    self.plugin = plugin
    self.version = version
    self.artifactDigest = artifactDigest
    self.artifactSize = artifactSize
    self.configJSON = configJSON
    self.state = state
    self.message = message
    self.updatedMs = updatedMs
    self.active = active
  }

  /// Whether two versions of a task ask the node for the same thing.
  package func sameSpec(as other: TaskRecord) -> Bool {
    plugin == other.plugin && version == other.version && artifactDigest == other.artifactDigest
      && configJSON == other.configJSON
  }
}
