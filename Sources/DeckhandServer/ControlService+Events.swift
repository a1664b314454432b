internal import DeckhandCore
internal import DeckhandProtocol
internal import GRPCCore

extension ControlService {
  /// Kept events that match, oldest first; with `follow`, then each new
  /// one: woken by this replica's batches, and every second for the other
  /// replicas'.
  func streamEvents(request: ServerRequest<Deckhand_Control_V1_StreamEventsRequest>, context: ServerContext)
    async throws -> StreamingServerResponse<Deckhand_Control_V1_FleetEvent>
  {
    try await mappingErrors {
      try await requireOperator(request.metadata)
      let query = request.message
      let log = plane.events
      let node = query.node.isEmpty ? nil : query.node
      let plugin = query.plugin.isEmpty ? nil : query.plugin
      let limit = query.limit > 0 ? min(Int(query.limit), 10_000) : 1_000
      return StreamingServerResponse { writer in
        try await mappingErrors {
          let (wake, token) = log.stored.watch(0)
          defer { log.stored.unwatch(0, token) }
          var last: Int64 = 0
          var batch = try await log.store.events(
            after: 0, sinceMs: query.sinceMs, node: node, plugin: plugin, limit: limit)
          while true {
            for event in batch {
              try await writer.write(ProtoMapping.event(event))
              last = max(last, event.sequence)
            }
            guard query.follow, !log.stored.isClosed else { return [:] }
            await wake.next(orAfter: .seconds(1))
            try Task.checkCancellation()
            batch = try await log.store.events(
              after: last, sinceMs: query.sinceMs, node: node, plugin: plugin, limit: 1_000)
          }
        }
      }
    }
  }
}
