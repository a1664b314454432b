internal import DeckhandCore
internal import DeckhandProtocol
internal import GRPCCore

extension ControlService {
  /// A plugin's logs on a node, through its agent.
  func getLogStream(request: ServerRequest<Deckhand_Control_V1_GetLogStreamRequest>, context: ServerContext)
    async throws -> StreamingServerResponse<Deckhand_Dispatcher_V1_LogLine>
  {
    try await mappingErrors {
      try await requireOperator(request.metadata)
      let query = request.message
      try PluginName.check(query.plugin)
      guard query.tail >= 0, query.tail <= 10_000 else {
        throw DeckhandError(.configurationInvalid, "--tail \(query.tail): expected 0 to 10000 lines")
      }
      let node = try await plane.findNode(query.node)
      var ask = Deckhand_Dispatcher_V1_LogRequest()
      ask.plugin = query.plugin
      ask.follow = query.follow
      ask.tail = query.tail
      ask.sinceMs = query.sinceMs
      let (id, pairing) = try logs.open(node: node.id, name: node.name, ask)
      let logs = self.logs
      return StreamingServerResponse { writer in
        defer {
          pairing.leave.finish()
          logs.abandon(id)
        }
        return try await mappingErrors {
          // The agent answers within 10 s, or not at all.
          var chunks = pairing.lines.makeAsyncIterator()
          let first = await firstResult(within: .seconds(10)) { [pairing] in
            var iterator = pairing.lines.makeAsyncIterator()
            return await iterator.next()
          }
          guard let first else {
            throw DeckhandError(.callFailed, "node \(node.name)'s agent did not answer the log request within 10 s")
          }
          var next: Deckhand_Dispatcher_V1_LogChunk? = first
          while let chunk = next {
            if !chunk.error.isEmpty { throw DeckhandError(.notFound, "node \(node.name): \(chunk.error)") }
            for line in chunk.lines { try await writer.write(line) }
            next = await chunks.next()
          }
          return [:]
        }
      }
    }
  }
}
