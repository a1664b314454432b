package import DeckhandCore
package import DeckhandProtocol
package import Foundation
internal import Synchronization

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

  private struct State {
    var watchers: [String: [UUID: AsyncStream<Deckhand_Dispatcher_V1_LogRequest>.Continuation]] = [:]
    /// Requests by id, with the node whose agent must answer them.
    var pending: [String: (node: String, pairing: Pairing)] = [:]
  }
  private let state = Mutex(State())

  /// Chunks that may wait for a slow operator.
  package static let maxWaitingChunks = 256

  package init() {}

  /// The agent's request stream for `node`.
  package func watch(node: String) -> (AsyncStream<Deckhand_Dispatcher_V1_LogRequest>, UUID) {
    let (stream, continuation) = AsyncStream.makeStream(of: Deckhand_Dispatcher_V1_LogRequest.self)
    let token = UUID()
    state.withLock { $0.watchers[node, default: [:]][token] = continuation }
    return (stream, token)
  }

  package func unwatch(node: String, _ token: UUID) {
    let continuation = state.withLock { $0.watchers[node]?.removeValue(forKey: token) }
    continuation?.finish()
  }

  /// Sends `request` (its id set here) to `node`'s agent.
  ///
  /// - Throws: ``DeckhandError`` `notConnected` when the node's agent is
  ///   not connected to this replica.
  package func open(node: String, name: String, _ request: Deckhand_Dispatcher_V1_LogRequest) throws -> (
    String, Pairing
  ) {
    // At most ``maxWaitingChunks`` (of at most 64 KiB each) wait for a
    // slow operator; past that the stream ends, saying so.
    let (lines, sink) = AsyncStream.makeStream(
      of: Deckhand_Dispatcher_V1_LogChunk.self, bufferingPolicy: .bufferingOldest(Self.maxWaitingChunks))
    let (gone, leave) = AsyncStream.makeStream(of: Void.self)
    let pairing = Pairing(lines: lines, sink: sink, gone: gone, leave: leave)
    let id = ControlPlane.randomText(bytes: 12)
    let watcher = state.withLock { state -> AsyncStream<Deckhand_Dispatcher_V1_LogRequest>.Continuation? in
      guard let watcher = state.watchers[node]?.values.first else { return nil }
      state.pending[id] = (node, pairing)
      return watcher
    }
    guard let watcher else {
      throw DeckhandError(
        .notConnected,
        "node \(name) has no agent connected to this server for logs right now (with replicas: ask the one it is connected to); `deckhand nodes ls` shows whether it is READY")
    }
    var request = request
    request.requestID = id
    watcher.yield(request)
    return (id, pairing)
  }

  /// The agent's answer stream for request `id`, which only the node it
  /// was sent to may take.
  package func attach(_ id: String, node: String) throws -> Pairing {
    let pairing = state.withLock { state -> Pairing? in
      guard let pending = state.pending[id], pending.node == node else { return nil }
      state.pending[id] = nil
      return pending.pairing
    }
    guard let pairing else { throw DeckhandError(.notFound, "no log request \(id) is waiting for this node") }
    return pairing
  }

  /// Forgets a request whose agent never came, or whose operator left.
  package func abandon(_ id: String) {
    let pairing = state.withLock { $0.pending.removeValue(forKey: id)?.pairing }
    pairing?.sink.finish()
  }

  /// Ends `node`'s request streams and its waiting requests (the node was
  /// removed).
  package func endNode(_ node: String) {
    let (watchers, pending) = state.withLock { state in
      let watchers = state.watchers.removeValue(forKey: node).map { Array($0.values) } ?? []
      let ids = state.pending.filter { $0.value.node == node }.map(\.key)
      return (watchers, ids.compactMap { state.pending.removeValue(forKey: $0)?.pairing })
    }
    for watcher in watchers { watcher.finish() }
    for pairing in pending { pairing.sink.finish() }
  }

  /// Ends every stream and waiting request (server shutdown).
  package func close() {
    let (watchers, pending) = state.withLock { state in
      defer { state = State() }
      return (state.watchers.values.flatMap(\.values), state.pending.values.map(\.pairing))
    }
    for watcher in watchers { watcher.finish() }
    for pairing in pending { pairing.sink.finish() }
  }
}
