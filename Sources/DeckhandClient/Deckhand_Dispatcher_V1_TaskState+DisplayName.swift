internal import DeckhandCore
package import DeckhandProtocol

extension Deckhand_Dispatcher_V1_TaskState {
  /// NEW, ASSIGNED, … as the CLI and the deployment counts name them
  /// (``DeckhandCore/TaskState/displayName``).
  package var displayName: String {
    TaskState(rawValue: rawValue)?.displayName ?? "STATE\(rawValue)"
  }
}
