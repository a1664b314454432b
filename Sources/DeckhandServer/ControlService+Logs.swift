internal import DeckhandCore
internal import DeckhandProtocol
internal import GRPCCore

extension ControlService {
  /// A plugin's logs on a node, through its agent.
  func getLogStream(request: ServerRequest<Deckhand_Control_V1_GetLogStreamRequest>, context: ServerContext)
    async throws -> StreamingServerResponse<Deckhand_Dispatcher_V1_LogLine>
  {
    try await mappingErrors {
      try await plane.authorize(request.metadata.authorization, for: .read)
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
        try await mappingErrors {
          try await logs.forward(id, pairing, nodeName: node.name) { try await writer.write($0) }
          return [:]
        }
      }
    }
  }
}
