package import DeckhandCore
package import Foundation

/// Where the server keeps its state: SQLite (``SQLiteServerStore``, the
/// embedded default) or PostgreSQL (``PostgresServerStore``, shared by
/// replicas). The records are plain values of `DeckhandCore` and this
/// module; neither store's types appear here.
///
/// Every method is one transaction: after a crash a change is either whole
/// or absent. Every method is `async`: a store never blocks a thread of
/// the caller's (SQLite runs on its own queue, PostgreSQL over NIO).
/// `StoreConformanceTests` holds both to the same behaviour.
package protocol ServerStore: Sendable {
  /// Times the store's calls for the metrics.
  var timing: StoreTiming { get }
  // MARK: Tokens

  /// Saves a token, durably (tokens grant and revoke access).
  func save(_ token: TokenRecord) async throws
  func token(id: String) async throws -> TokenRecord?
  /// Every token, oldest first.
  func tokens() async throws -> [TokenRecord]

  // MARK: Nodes

  /// Saves a node. A second node with the same name is refused by the
  /// store (the name is unique).
  func save(_ node: NodeRecord) async throws
  func node(id: String) async throws -> NodeRecord?
  func node(named name: String) async throws -> NodeRecord?
  /// Every node, by name.
  func nodes() async throws -> [NodeRecord]
  /// Sets the status (and, where given, the last heartbeat) of many nodes.
  /// A change with a heartbeat time applies only when no newer heartbeat
  /// is stored: another replica may hold the node's session now, and its
  /// word wins.
  func setNodeStatus(_ changes: [NodeLiveness.StatusChange]) async throws
  /// Marks DOWN the READY nodes whose last stored heartbeat is older than
  /// `heartbeatBeforeMs` (no replica holds their session: theirs died);
  /// returns their ids.
  func markStaleNodesDown(heartbeatBeforeMs: Int64) async throws -> [String]
  /// Records `events` in order, each given the next sequence number.
  func append(events: [FleetEvent]) async throws
  /// Kept events after `sequence` and at or after `sinceMs`, of `node`
  /// (id or name) and `plugin` when given: the newest `limit`, oldest
  /// first.
  func events(after sequence: Int64, sinceMs: Int64, node: String?, plugin: String?, limit: Int) async throws
    -> [FleetEvent]
  /// Deletes events older than `beforeMs`; how many.
  func pruneEvents(before beforeMs: Int64) async throws -> Int
  /// Keeps what each node's plugins use (replacing its last report), as
  /// its heartbeats said at `reportedMs`, in one transaction.
  func setPluginUsage(_ usage: [String: [PluginUsage]], reportedMs: Int64) async throws
  /// A node's last stored plugin usage and when it was reported; nil if
  /// none was.
  func pluginUsage(node id: String) async throws -> (usage: [PluginUsage], reportedMs: Int64)?
  /// Every node to `status` (at server start: UNKNOWN).
  func setAllNodes(status: NodeStatus) async throws
  /// Removes node `id` in one transaction, durably: its record (a
  /// tombstone is kept), its active tasks (REMOVED), and its runner's
  /// unfinished jobs (QUEUED again, see
  /// ``JobLifecycle/release(from:nowMs:)``). Nil if no such node.
  func removeNode(id: String, nowMs: Int64) async throws -> NodeRemoval?
  /// The tombstones of removed nodes.
  func removedNodes() async throws -> [RemovedNode]

  // MARK: Artifacts

  func save(_ artifact: ArtifactRecord) async throws
  func artifact(digest: String) async throws -> ArtifactRecord?
  /// The newest artifact of `name`@`version`.
  func artifact(name: String, version: String) async throws -> ArtifactRecord?
  /// Every artifact, by name, then age.
  func artifacts() async throws -> [ArtifactRecord]
  /// Keeps the content of artifact `digest`, read from the file at `path`
  /// (which the store may move away), where every replica can serve it.
  func storeArtifactContent(digest: String, file path: String) async throws
  /// Up to `count` bytes of artifact `digest`'s content from `offset`:
  /// empty past its end, nil if its content is not stored.
  func artifactContent(digest: String, offset: Int64, count: Int) async throws -> Data?

  // MARK: The server's own secrets

  /// The secret `name` (the CA), if stored.
  func secret(_ name: String) async throws -> String?
  /// Stores `value` as secret `name` unless one is stored already, and
  /// returns the one stored: replicas starting together agree on one.
  func claimSecret(_ name: String, value: String) async throws -> String

  // MARK: Deployments and tasks

  func save(_ deployment: DeploymentRecord) async throws
  func deployment(id: String) async throws -> DeploymentRecord?
  /// Every deployment, oldest first.
  func deployments() async throws -> [DeploymentRecord]
  /// Saves deployments and tasks together.
  func apply(deployments: [DeploymentRecord], tasks: [TaskRecord]) async throws
  /// Tasks, oldest change first, filtered by node, deployment and whether
  /// they are active.
  func tasks(node: String?, deployment: String?, activeOnly: Bool) async throws -> [TaskRecord]
  /// Applies agents' status updates to known, active tasks of the node
  /// that reports them (others are ignored); returns the tasks that
  /// changed.
  func updateTasks(_ updates: [TaskUpdate]) async throws -> [TaskRecord]

  // MARK: Jobs

  /// Inserts `job`; a still-QUEUED job with the same singleton id ends
  /// (ERROR, replaced). Returns the replaced ids.
  func insert(_ job: JobRecord) async throws -> [String]
  func job(id: String) async throws -> JobRecord?
  /// Jobs queued at or after `since`, newest first, at most `limit` (or
  /// 1,000 when `limit` is 0), of `states` (all when empty) and `runner`.
  func jobs(states: [Int], runner: String?, since: Int64, limit: Int) async throws -> [JobRecord]
  /// How many jobs are kept in each state (raw ``JobRecord/state``
  /// values; states with none are left out).
  func jobCounts() async throws -> [Int: Int]
  /// The node `id` as a runner (its name and labels); nil if unknown or
  /// drained.
  func runnerIdentity(id: String, byIdOnly: Bool) async throws -> RunnerIdentity?
  /// The runner `id` as it is now, and the oldest QUEUED job it may take,
  /// made WAITING for it; nil if the runner is unknown or drained. Two
  /// claims at once never take the same job.
  func claim(runner id: String, byIdOnly: Bool, now: Int64) async throws -> JobClaim?
  /// Changes one job's lifecycle atomically; nil if it does not exist.
  /// `change` may run more than once (a store that lost a race to another
  /// writer runs it on the newer record); only the last run is written.
  func update(_ id: String, _ change: @escaping @Sendable (inout JobRecord) throws -> Void) async throws -> JobRecord?
  /// Appends output, numbering it after the job's last, up to `limit`
  /// bytes per job: the event that crosses it is cut there and followed by
  /// a note saying so, and later output is dropped. Returns the new last
  /// sequence number (0 for an unknown job).
  func appendOutput(_ id: String, _ events: [JobOutputEvent], limit: Int64) async throws -> Int64
  /// Up to `limit` output events after `sequence`, in order.
  func output(_ id: String, after sequence: Int64, limit: Int) async throws -> [JobOutputRecord]
  /// Stops a RUNNING job with `error` (``JobLifecycle/stop(error:nowMs:)``).
  /// Whether it changed.
  func stop(_ id: String, error: String, nowMs: Int64) async throws -> Bool
  /// Sets every running job's last heartbeat to `nowMs` (a server that
  /// starts again gives its runners a full heartbeat timeout to return).
  func restartHeartbeats(nowMs: Int64) async throws
  /// Applies the timeout rules; returns the jobs it changed.
  func expire(now: Int64, ackTimeoutMs: Int64, heartbeatTimeoutMs: Int64) async throws -> [JobRecord]
  /// Deletes ended jobs (and their output) that ended before `before`;
  /// returns how many.
  func prune(endedBefore before: Int64) async throws -> Int

  // MARK: Replicas

  /// Records that replica `id` serves at `address` now.
  func announceReplica(id: String, address: String, nowMs: Int64) async throws
  /// The addresses of the replicas that announced themselves at or after
  /// `sinceMs`, oldest first; replicas silent for a day are forgotten.
  func replicas(seenSinceMs sinceMs: Int64) async throws -> [String]

  // MARK: Snapshots

  /// Writes every row to `snapshot`, all read in one transaction (the
  /// server keeps serving), and the artifacts' content.
  func export(to snapshot: SnapshotWriter) async throws
  /// Replaces every row with `snapshot`'s records, in one transaction;
  /// returns how many. The caller verified the snapshot first
  /// (``SnapshotReader/verify(path:)``).
  func restore(from snapshot: SnapshotReader) async throws -> UInt64

  // MARK: Config variables

  /// Sets variables; one with an empty value is deleted.
  func setConfig(_ variables: [ConfigRecord]) async throws
  /// Variables whose name starts with `prefix`, by scope, target, name.
  func config(prefix: String) async throws -> [ConfigRecord]
}

/// One piece of a job's output, for ``ServerStore/appendOutput(_:_:limit:)``.
package struct JobOutputEvent: Sendable, Hashable {
  /// `OutputEvent.Kind` raw value.
  package var kind: Int
  package var data: Data
  package var timestampMs: Int64
  package init(kind: Int, data: Data, timestampMs: Int64) {
    self.kind = kind
    self.data = data
    self.timestampMs = timestampMs
  }
}
