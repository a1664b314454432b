/// Where a job stands (the jobs protocol's `JobState`, same numbers):
/// QUEUED → WAITING (assigned, not acknowledged) → RUNNING → SUCCESS or
/// ERROR.
package enum JobState: Int, Sendable, Hashable, Codable, CaseIterable {
  case queued = 1
  case waiting = 2
  case running = 3
  case success = 4
  case error = 5

  /// SUCCESS or ERROR: nothing changes it any more.
  package var isEnded: Bool { self == .success || self == .error }
}

extension JobState {
  /// The state as operators read it: `QUEUED`, `WAITING`, `RUNNING`,
  /// `SUCCESS`, `ERROR` (the CLI's tables, the web UI).
  package var displayName: String {
    switch self {
    case .queued: "QUEUED"
    case .waiting: "WAITING"
    case .running: "RUNNING"
    case .success: "SUCCESS"
    case .error: "ERROR"
    }
  }
}
