package import DeckhandCore
package import DeckhandProtocol

extension Deckhand_Dispatcher_V1_Task: AssignedTask {
  /// Whether `other` asks the node for the same plugin, version, package
  /// and config.
  package func sameSpec(as other: Deckhand_Dispatcher_V1_Task) -> Bool {
    plugin == other.plugin && version == other.version && artifactDigest == other.artifactDigest
      && configJson == other.configJson
  }
}

extension AssignmentChain.Message where Task == Deckhand_Dispatcher_V1_Task {
  /// The message an agent received (changes that carry no task are
  /// skipped).
  package init(_ message: Deckhand_Dispatcher_V1_AssignmentsMessage) {
    var changes: [(action: AssignmentChain.Action, task: Deckhand_Dispatcher_V1_Task)] = []
    for change in message.changes {
      guard case .task(let task) = change.item else { continue }
      changes.append((change.action == .remove ? .remove : .update, task))
    }
    self.init(
      isComplete: message.type == .complete, appliesTo: message.appliesTo, resultsIn: message.resultsIn,
      changes: changes)
  }
}
