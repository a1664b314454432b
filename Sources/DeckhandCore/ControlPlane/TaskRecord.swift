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
  /// Its deployment's trace context (``DeploymentRecord/traceContext``):
  /// not part of what the task asks for (``sameSpec(as:)``).
  package var traceContext: [String: String]

  package init(
    id: String, deploymentId: String, nodeId: String, plugin: String, version: String, artifactDigest: String,
    artifactSize: Int64, configJSON: String, state: TaskState, message: String, updatedMs: Int64, active: Bool,
    traceContext: [String: String] = [:]
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
    self.traceContext = traceContext
  }

  /// Whether two versions of a task ask the node for the same thing.
  package func sameSpec(as other: TaskRecord) -> Bool {
    plugin == other.plugin && version == other.version && artifactDigest == other.artifactDigest
      && configJSON == other.configJSON
  }

  /// Applies an agent's report: only to an active task of the reporting
  /// node, and only if it says something new. Whether it changed.
  package mutating func apply(_ update: TaskUpdate, nowMs: Int64) -> Bool {
    guard nodeId == update.nodeId, active, state != update.state || message != update.message else { return false }
    if let from = update.onlyFrom, state != from { return false }
    state = update.state
    message = update.message
    updatedMs = nowMs
    return true
  }

  /// Retires the task of a node an operator removed (REMOVED, inactive).
  package mutating func retire(nodeName: String, nowMs: Int64) {
    state = .removed
    active = false
    message = "its node \(nodeName) was removed from the fleet"
    updatedMs = nowMs
  }
}

/// An agent's report of one task's state, for the store's `updateTasks`.
package struct TaskUpdate: Sendable, Hashable {
  package var id: String
  /// The reporting node: a task of another node is not changed.
  package var nodeId: String
  package var state: TaskState
  package var message: String
  /// Applies only to a task in this state: the server's own NEW →
  /// ASSIGNED must not undo a report the agent made meanwhile (a task
  /// sent, reported RUNNING, then marked ASSIGNED would stay so).
  package var onlyFrom: TaskState?
  package init(id: String, nodeId: String, state: TaskState, message: String, onlyFrom: TaskState? = nil) {
    self.id = id
    self.nodeId = nodeId
    self.state = state
    self.message = message
    self.onlyFrom = onlyFrom
  }
}
