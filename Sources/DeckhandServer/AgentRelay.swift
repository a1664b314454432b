package import Foundation
internal import Synchronization

/// Requests to agents through the server, for `deckhand exec` and
/// `deckhand logs`: each node's agent keeps a stream open for requests (it
/// dials out, so nodes need no open port), and answers one by opening a
/// call that names it; the operator's side and the agent's are paired by
/// the request's id.
///
/// Only the node a request was sent to may take it; another node learns
/// nothing, not even that it exists.
package final class AgentRelay<Request: Sendable, Pairing: Sendable>: Sendable {
  private struct State {
    var watchers: [String: [UUID: AsyncStream<Request>.Continuation]] = [:]
    /// Requests not yet taken, by id, with the node that must take them.
    var pending: [String: (node: String, pairing: Pairing)] = [:]
  }
  private let state = Mutex(State())
  /// Ends a pairing that will never be taken (its node left, shutdown).
  private let end: @Sendable (Pairing) -> Void

  package init(end: @escaping @Sendable (Pairing) -> Void) {
    self.end = end
  }

  /// `node`'s stream of requests, and the token that ends it.
  package func watch(node: String) -> (AsyncStream<Request>, UUID) {
    let (stream, continuation) = AsyncStream.makeStream(of: Request.self)
    let token = UUID()
    state.withLock { $0.watchers[node, default: [:]][token] = continuation }
    return (stream, token)
  }

  package func unwatch(node: String, _ token: UUID) {
    let continuation = state.withLock { $0.watchers[node]?.removeValue(forKey: token) }
    continuation?.finish()
  }

  /// Sends `request` to `node`'s agent, keeping `pairing` for it under
  /// `id`; false when no agent of `node` watches here.
  package func send(_ request: Request, id: String, to node: String, pairing: Pairing) -> Bool {
    let watcher = state.withLock { state -> AsyncStream<Request>.Continuation? in
      guard let watcher = state.watchers[node]?.values.first else { return nil }
      state.pending[id] = (node, pairing)
      return watcher
    }
    watcher?.yield(request)
    return watcher != nil
  }

  /// The pairing of request `id`, taken by `node` (nil unless it was sent
  /// to `node` and not taken yet).
  package func take(_ id: String, node: String) -> Pairing? {
    state.withLock { state -> Pairing? in
      guard let pending = state.pending[id], pending.node == node else { return nil }
      state.pending[id] = nil
      return pending.pairing
    }
  }

  /// Forgets a request whose agent never came.
  package func abandon(_ id: String) {
    if let pairing = state.withLock({ $0.pending.removeValue(forKey: id)?.pairing }) { end(pairing) }
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
    for pairing in pending { end(pairing) }
  }

  /// Ends every stream and waiting request (server shutdown).
  package func close() {
    let (watchers, pending) = state.withLock { state in
      defer { state = State() }
      return (state.watchers.values.flatMap(\.values), state.pending.values.map(\.pairing))
    }
    for watcher in watchers { watcher.finish() }
    for pairing in pending { end(pairing) }
  }
}
