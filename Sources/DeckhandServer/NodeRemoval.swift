package import DeckhandCore

/// What removing a node from the fleet changed, in one transaction: the
/// node's record is gone (a tombstone keeps its name for the refusal its
/// agent gets), its active tasks are retired (REMOVED), and the jobs its
/// runner had not ended are queued again for others.
package struct NodeRemoval: Sendable, Hashable {
  /// The node as it was.
  package var node: NodeRecord
  /// Its tasks that were active, now REMOVED and inactive.
  package var retiredTasks: [TaskRecord]
  /// Its runner's unfinished jobs, now QUEUED again (or ended, when a
  /// cancel had been asked for).
  package var releasedJobs: [JobRecord]

  package init(node: NodeRecord, retiredTasks: [TaskRecord], releasedJobs: [JobRecord]) {
    self.node = node
    self.retiredTasks = retiredTasks
    self.releasedJobs = releasedJobs
  }
}

/// A node an operator removed: its id stays known so that its agent is
/// told why its credential no longer works.
package struct RemovedNode: Sendable, Hashable {
  package var id: String
  package var name: String
  package var removedMs: Int64

  package init(id: String, name: String, removedMs: Int64) {
    self.id = id
    self.name = name
    self.removedMs = removedMs
  }
}
