package import DeckhandCore
package import DeckhandProtocol
package import Foundation

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

  private let relay = AgentRelay<Deckhand_Server_V1_RunnerExecControlResponse, Pairing> { pairing in
    pairing.agentSink.finish()
    pairing.operatorSink.finish()
  }

  package init() {}

  /// The agent's control stream for `node`.
  package func control(node: String) -> (AsyncStream<Deckhand_Server_V1_RunnerExecControlResponse>, UUID) {
    relay.watch(node: node)
  }

  package func endControl(node: String, _ token: UUID) { relay.unwatch(node: node, token) }

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
    var request = Deckhand_Server_V1_RunnerExecControlResponse()
    request.execID = id
    request.start = start
    guard relay.send(request, id: id, to: node, pairing: pairing) else {
      throw DeckhandError(
        .notConnected,
        "node \(start.node) has no agent connected for exec right now; `deckhand nodes ls` shows whether it is READY")
    }
    return (id, pairing)
  }

  /// The agent's stream for exec `id`, which only the node it was sent to
  /// may take (another node learns nothing, not even that it exists).
  package func attach(_ id: String, node: String) throws -> Pairing {
    guard let pairing = relay.take(id, node: node) else {
      throw DeckhandError(.notFound, "no exec \(id) is waiting for this node")
    }
    return pairing
  }

  /// Ends `node`'s control streams and the execs waiting for it (the node
  /// was removed).
  package func endNode(_ node: String) { relay.endNode(node) }

  /// Ends every control stream and waiting exec (server shutdown).
  package func close() { relay.close() }

  /// Forgets an exec whose agent never came.
  package func abandon(_ id: String) { relay.abandon(id) }
}
