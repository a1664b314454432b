package import DeckhandCore
package import DeckhandProtocol
package import Foundation
internal import Synchronization

/// Interactive exec through the server: an operator's `ExecStream` is
/// paired with the `RunnerExecStream` the node's agent opens for it. The
/// agent learns of each exec on its `RunnerExecControl` stream (it dials
/// out, so nodes need no open port).
package final class ExecRelay: Sendable {
  /// One exec waiting for, or joined with, its agent stream.
  package struct Pairing: Sendable {
    /// Messages for the agent (stdin, window sizes).
    package let toAgent: AsyncStream<Deckhand_Server_V1_RunnerExecStreamResponse>
    package let agentSink: AsyncStream<Deckhand_Server_V1_RunnerExecStreamResponse>.Continuation
    /// Messages for the operator (output, exit).
    package let toOperator: AsyncStream<Deckhand_Server_V1_ExecStreamResponse>
    package let operatorSink: AsyncStream<Deckhand_Server_V1_ExecStreamResponse>.Continuation
  }

  private struct State {
    var controls: [String: [UUID: AsyncStream<Deckhand_Server_V1_RunnerExecControlResponse>.Continuation]] = [:]
    /// Waiting execs by id, with the node whose agent must take them.
    var pending: [String: (node: String, pairing: Pairing)] = [:]
  }
  private let state = Mutex(State())

  package init() {}

  /// The agent's control stream for `node`.
  package func control(node: String) -> (AsyncStream<Deckhand_Server_V1_RunnerExecControlResponse>, UUID) {
    let (stream, continuation) = AsyncStream.makeStream(of: Deckhand_Server_V1_RunnerExecControlResponse.self)
    let token = UUID()
    state.withLock { $0.controls[node, default: [:]][token] = continuation }
    return (stream, token)
  }

  package func endControl(node: String, _ token: UUID) {
    let continuation = state.withLock { $0.controls[node]?.removeValue(forKey: token) }
    continuation?.finish()
  }

  /// Asks `node`'s agent to start `start`; returns the pairing the
  /// operator's stream uses.
  ///
  /// - Throws: ``DeckhandError`` `notConnected` when the node's agent
  ///   is not connected.
  package func open(node: String, _ start: Deckhand_Server_V1_ExecStreamRequest.Start) throws -> (String, Pairing) {
    let (toAgent, agentSink) = AsyncStream.makeStream(of: Deckhand_Server_V1_RunnerExecStreamResponse.self)
    let (toOperator, operatorSink) = AsyncStream.makeStream(of: Deckhand_Server_V1_ExecStreamResponse.self)
    let pairing = Pairing(toAgent: toAgent, agentSink: agentSink, toOperator: toOperator, operatorSink: operatorSink)
    let id = ControlPlane.randomText(bytes: 12)
    let control = state.withLock { state -> AsyncStream<Deckhand_Server_V1_RunnerExecControlResponse>.Continuation? in
      guard let control = state.controls[node]?.values.first else { return nil }
      state.pending[id] = (node, pairing)
      return control
    }
    guard let control else {
      throw DeckhandError(
        .notConnected,
        "node \(start.node) has no agent connected for exec right now; `deckhand nodes ls` shows whether it is READY")
    }
    var request = Deckhand_Server_V1_RunnerExecControlResponse()
    request.execID = id
    request.start = start
    control.yield(request)
    return (id, pairing)
  }

  /// The agent's stream for exec `id`, which only the node it was sent to
  /// may take (another node learns nothing, not even that it exists).
  package func attach(_ id: String, node: String) throws -> Pairing {
    let pairing = state.withLock { state -> Pairing? in
      guard let pending = state.pending[id], pending.node == node else { return nil }
      state.pending[id] = nil
      return pending.pairing
    }
    guard let pairing else { throw DeckhandError(.notFound, "no exec \(id) is waiting for this node") }
    return pairing
  }

  /// Ends `node`'s control streams and the execs waiting for it (the node
  /// was removed).
  package func endNode(_ node: String) {
    let (controls, pending) = state.withLock { state in
      let controls = state.controls.removeValue(forKey: node).map { Array($0.values) } ?? []
      let ids = state.pending.filter { $0.value.node == node }.map(\.key)
      return (controls, ids.compactMap { state.pending.removeValue(forKey: $0)?.pairing })
    }
    for control in controls { control.finish() }
    for pairing in pending {
      pairing.agentSink.finish()
      pairing.operatorSink.finish()
    }
  }

  /// Ends every control stream and waiting exec (server shutdown).
  package func close() {
    let (controls, pending) = state.withLock { state in
      defer {
        state.controls = [:]
        state.pending = [:]
      }
      return (state.controls.values.flatMap(\.values), state.pending.values.map(\.pairing))
    }
    for control in controls { control.finish() }
    for pairing in pending {
      pairing.agentSink.finish()
      pairing.operatorSink.finish()
    }
  }

  /// Forgets an exec whose agent never came.
  package func abandon(_ id: String) {
    let pairing = state.withLock { $0.pending.removeValue(forKey: id)?.pairing }
    pairing?.agentSink.finish()
    pairing?.operatorSink.finish()
  }
}
