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
      try await plane.authorize(request.metadata.authorization, for: .read)
      let query = request.message
      let log = plane.events
      let node = query.node.isEmpty ? nil : query.node
      let plugin = query.plugin.isEmpty ? nil : query.plugin
      let limit = query.limit > 0 ? min(Int(query.limit), 10_000) : 1_000
      return StreamingServerResponse { writer in
        try await mappingErrors {
          try await log.follow(
            sinceMs: query.sinceMs, node: node, plugin: plugin, limit: limit, follow: query.follow
          ) { event in
            try await writer.write(ProtoMapping.event(event))
          }
          return [:]
        }
      }
    }
  }
}
