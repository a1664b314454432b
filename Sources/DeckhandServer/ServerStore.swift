package import DeckhandCore

/// Where the server keeps its state. SQLite (``SQLiteServerStore``) is the
/// embedded default; a PostgreSQL store for several server replicas will
/// fulfil the same protocol. Every method is one transaction: after a
/// crash a change is either whole or absent.
package protocol ServerStore: Sendable {
  // Tokens
  func save(_ token: TokenRecord) throws
  func token(id: String) throws -> TokenRecord?
  func tokens() throws -> [TokenRecord]

  // Nodes
  func save(_ node: NodeRecord) throws
  func node(id: String) throws -> NodeRecord?
  func node(named name: String) throws -> NodeRecord?
  func nodes() throws -> [NodeRecord]
  /// Sets the status (and, where given, the last heartbeat) of many nodes.
  func setNodeStatus(_ changes: [NodeLiveness.StatusChange]) throws
  /// Every node to `status` (at server start: UNKNOWN).
  func setAllNodes(status: NodeStatus) throws
  /// Removes node `id` in one transaction: its record (a tombstone is
  /// kept), its active tasks (REMOVED), and its runner's unfinished jobs
  /// (QUEUED again, see ``JobLifecycle/release(from:nowMs:)``). Nil if no
  /// such node.
  func removeNode(id: String, nowMs: Int64) throws -> NodeRemoval?
  /// The tombstones of removed nodes.
  func removedNodes() throws -> [RemovedNode]

  // Artifacts
  func save(_ artifact: ArtifactRecord) throws
  func artifact(digest: String) throws -> ArtifactRecord?
  func artifact(name: String, version: String) throws -> ArtifactRecord?
  func artifacts() throws -> [ArtifactRecord]

  // Deployments and tasks
  func save(_ deployment: DeploymentRecord) throws
  func deployment(id: String) throws -> DeploymentRecord?
  func deployments() throws -> [DeploymentRecord]
  /// Saves deployments and tasks together.
  func apply(deployments: [DeploymentRecord], tasks: [TaskRecord]) throws
  func tasks(node: String?, deployment: String?, activeOnly: Bool) throws -> [TaskRecord]
  /// Applies agents' status updates to known, active tasks (others are
  /// ignored); returns the tasks that changed.
  func updateTasks(_ updates: [(id: String, nodeId: String, state: TaskState, message: String)]) async throws
    -> [TaskRecord]
}
