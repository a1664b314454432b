internal import DeckhandCore
internal import DeckhandProtocol
internal import GRPCCore

extension DispatcherService {
  /// The calling node's log requests, until its stream ends.
  func logRequests(request: ServerRequest<Deckhand_Dispatcher_V1_LogRequestsRequest>, context: ServerContext)
    async throws -> StreamingServerResponse<Deckhand_Dispatcher_V1_LogRequest>
  {
    try await mappingErrors {
      let nodeId = try await node(request.metadata)
      let logs = self.logs
      return StreamingServerResponse { writer in
        let (requests, token) = logs.watch(node: nodeId)
        defer { logs.unwatch(node: nodeId, token) }
        for await next in requests { try await writer.write(next) }
        return [:]
      }
    }
  }

  /// One answer: its first chunk names a request sent to this node; the
  /// chunks go to the operator until the agent ends or the operator
  /// leaves (then this call ends, and the agent stops following).
  func sendLogs(request: StreamingServerRequest<Deckhand_Dispatcher_V1_LogChunk>, context: ServerContext)
    async throws -> ServerResponse<Deckhand_Dispatcher_V1_SendLogsResponse>
  {
    try await mappingErrors {
      let nodeId = try await node(request.metadata)
      let logs = self.logs
      let (attached, attach) = AsyncStream.makeStream(of: LogRelay.Pairing.self)
      try await withThrowingTaskGroup(of: Void.self) { group in
        // The agent's chunks: the first names the request.
        group.addTask {
          var pairing: LogRelay.Pairing?
          defer {
            pairing?.sink.finish()
            attach.finish()
          }
          for try await chunk in request.messages {
            if pairing == nil {
              let found = try logs.attach(chunk.requestID, node: nodeId)
              pairing = found
              attach.yield(found)
            }
            guard case .enqueued = pairing?.sink.yield(chunk) else {
              throw DeckhandError(
                .rateLimited, "the reader fell more than \(LogRelay.maxWaitingChunks) chunks behind")
            }
          }
        }
        // The operator leaving ends the call (and the agent's following).
        group.addTask {
          for await pairing in attached {
            for await _ in pairing.gone {}
            return
          }
        }
        try await group.next()
        group.cancelAll()
      }
      return ServerResponse(message: .init())
    }
  }
}
