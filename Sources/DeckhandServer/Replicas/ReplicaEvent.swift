/// What one server replica tells the others, so that their waiting
/// streams and runners wake as if the change were their own (PostgreSQL
/// LISTEN/NOTIFY, ``ReplicaBus``).
package enum ReplicaEvent: Codable, Hashable, Sendable {
  /// A job's state or output changed.
  case job(String)
  /// Config variables changed.
  case config
  /// A job of this runner was asked to stop.
  case cancel(runner: String)
  /// A job waits for a runner of this id (or any, "") and labels.
  case queued(runner: String, labels: [String: String])
  /// Every waiting runner should look at the queue again.
  case queuedAny
  /// These nodes' assignments changed.
  case assignments([String])
  /// An operator removed this node.
  case removed(String)
  /// Placement should be computed again (the leader's reconcile runs).
  case reconcile
  /// The store's state was replaced by a snapshot.
  case restored
  /// Never sent: delivered here when listening starts again after a gap,
  /// in which events may have been missed (node credentials and removals
  /// are read again).
  case resync
}
