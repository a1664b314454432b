package import DeckhandCore

extension EventLog {
  /// Kept events after sequence `after` (and since `sinceMs`) that match
  /// `node` and `plugin`, oldest first, at most `limit`; with `follow`,
  /// then each new one as it is stored, until the log closes: woken by
  /// this replica's batches, and every second for the other replicas'.
  /// What `deckhand events` (StreamEvents) and the web UI's events page
  /// show.
  package func follow(
    after: Int64 = 0, sinceMs: Int64 = 0, node: String?, plugin: String?, limit: Int, follow: Bool,
    _ emit: (FleetEvent) async throws -> Void
  ) async throws {
    let (wake, token) = stored.watch(0)
    defer { stored.unwatch(0, token) }
    var last = after
    var batch = try await store.events(after: after, sinceMs: sinceMs, node: node, plugin: plugin, limit: limit)
    while true {
      for event in batch {
        try await emit(event)
        last = max(last, event.sequence)
      }
      guard follow, !stored.isClosed else { return }
      await wake.next(orAfter: .seconds(1))
      try Task.checkCancellation()
      batch = try await store.events(after: last, sinceMs: sinceMs, node: node, plugin: plugin, limit: 1_000)
    }
  }
}
