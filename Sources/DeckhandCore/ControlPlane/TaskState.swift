/// Where one plugin on one node stands (the dispatcher protocol's
/// `TaskState`, same numbers): NEW → ASSIGNED → ACCEPTED → PREPARING →
/// STARTING → RUNNING, or FAILED; REMOVED once it is history.
package enum TaskState: Int, Sendable, Hashable, Codable, CaseIterable {
  case new = 0
  case assigned = 1
  case accepted = 2
  case preparing = 3
  case starting = 4
  case running = 5
  case failed = 6
  case removed = 7

  /// Sent to a node but not yet RUNNING or FAILED: a rollout waits for it.
  package var isInProgress: Bool {
    switch self {
    case .new, .assigned, .accepted, .preparing, .starting: true
    case .running, .failed, .removed: false
    }
  }

  /// RUNNING or FAILED: the end of a start, which moves a rollout on.
  package var isSettled: Bool { self == .running || self == .failed }

  /// NEW, ASSIGNED, … as the CLI and the deployment counts name them.
  package var displayName: String {
    switch self {
    case .new: "NEW"
    case .assigned: "ASSIGNED"
    case .accepted: "ACCEPTED"
    case .preparing: "PREPARING"
    case .starting: "STARTING"
    case .running: "RUNNING"
    case .failed: "FAILED"
    case .removed: "REMOVED"
    }
  }
}
