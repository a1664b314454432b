package import DeckhandCore
package import DeckhandProtocol
package import Foundation

/// `deckhand logs` through the server: an operator's `GetLogStream` is
/// sent to the node's agent on its `LogRequests` stream, and paired with
/// the `SendLogs` stream the agent opens to answer it.
package final class LogRelay: Sendable {
  /// One request waiting for, or joined with, its agent stream.
  package struct Pairing: Sendable {
    /// Lines for the operator; finished when the agent is done.
    package let lines: AsyncStream<Deckhand_Dispatcher_V1_LogChunk>
    package let sink: AsyncStream<Deckhand_Dispatcher_V1_LogChunk>.Continuation
    /// Finishes when the operator has gone (the agent stops following).
    package let gone: AsyncStream<Void>
    let leave: AsyncStream<Void>.Continuation
  }

  private let relay = AgentRelay<Deckhand_Dispatcher_V1_LogRequest, Pairing> { $0.sink.finish() }

  /// Chunks that may wait for a slow operator.
  package static let maxWaitingChunks = 256

  package init() {}

  /// The agent's request stream for `node`.
  package func watch(node: String) -> (AsyncStream<Deckhand_Dispatcher_V1_LogRequest>, UUID) {
    relay.watch(node: node)
  }

  package func unwatch(node: String, _ token: UUID) { relay.unwatch(node: node, token) }

  /// Sends `request` (its id set here) to `node`'s agent.
  ///
  /// - Throws: ``DeckhandError`` `notConnected` when the node's agent is
  ///   not connected to this replica.
  package func open(node: String, name: String, _ request: Deckhand_Dispatcher_V1_LogRequest) throws -> (
    String, Pairing
  ) {
    // At most ``maxWaitingChunks`` (of at most 64 KiB each) wait for a
    // slow operator; past that the agent's call ends, saying so.
    let (lines, sink) = AsyncStream.makeStream(
      of: Deckhand_Dispatcher_V1_LogChunk.self, bufferingPolicy: .bufferingOldest(Self.maxWaitingChunks))
    let (gone, leave) = AsyncStream.makeStream(of: Void.self)
    let pairing = Pairing(lines: lines, sink: sink, gone: gone, leave: leave)
    let id = ControlPlane.randomText(bytes: 12)
    var request = request
    request.requestID = id
    guard relay.send(request, id: id, to: node, pairing: pairing) else {
      throw DeckhandError(
        .notConnected,
        "node \(name) has no agent connected to this server for logs right now (with replicas: ask the one it is connected to); `deckhand nodes ls` shows whether it is READY"
      )
    }
    return (id, pairing)
  }

  /// Hands `emit` the lines the agent of node `nodeName` sends for
  /// request `id` (from ``open(node:name:_:)``) until it is done, then
  /// lets the agent go; for the gRPC API and the web UI alike.
  ///
  /// - Throws: ``DeckhandError`` `callFailed` when the agent does not
  ///   answer within 10 s, `notFound` with the agent's own error, or what
  ///   `emit` throws.
  package func forward(
    _ id: String, _ pairing: Pairing, nodeName: String,
    _ emit: (Deckhand_Dispatcher_V1_LogLine) async throws -> Void
  ) async throws {
    defer {
      pairing.leave.finish()
      abandon(id)
    }
    // The agent answers within 10 s, or not at all.
    var chunks = pairing.lines.makeAsyncIterator()
    let first = await firstResult(within: .seconds(10)) { [pairing] in
      var iterator = pairing.lines.makeAsyncIterator()
      return await iterator.next()
    }
    guard let first else {
      throw DeckhandError(.callFailed, "node \(nodeName)'s agent did not answer the log request within 10 s")
    }
    var next: Deckhand_Dispatcher_V1_LogChunk? = first
    while let chunk = next {
      if !chunk.error.isEmpty { throw DeckhandError(.notFound, "node \(nodeName): \(chunk.error)") }
      for line in chunk.lines { try await emit(line) }
      next = await chunks.next()
    }
  }

  /// The agent's answer stream for request `id`, which only the node it
  /// was sent to may take.
  package func attach(_ id: String, node: String) throws -> Pairing {
    guard let pairing = relay.take(id, node: node) else {
      throw DeckhandError(.notFound, "no log request \(id) is waiting for this node")
    }
    return pairing
  }

  /// Forgets a request whose agent never came, or whose operator left.
  package func abandon(_ id: String) { relay.abandon(id) }

  /// Ends `node`'s request streams and its waiting requests (the node was
  /// removed).
  package func endNode(_ node: String) { relay.endNode(node) }

  /// Ends every stream and waiting request (server shutdown).
  package func close() { relay.close() }
}
