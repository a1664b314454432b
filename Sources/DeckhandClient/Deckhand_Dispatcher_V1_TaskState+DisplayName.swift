package import DeckhandProtocol

extension Deckhand_Dispatcher_V1_TaskState {
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
    case .UNRECOGNIZED(let value): "STATE\(value)"
    }
  }
}
