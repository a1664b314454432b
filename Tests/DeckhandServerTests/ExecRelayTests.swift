import DeckhandCore
import DeckhandProtocol
import DeckhandServer
import Testing

@Suite("ExecRelay: an exec is taken only by the node it was sent to")
struct ExecRelayTests {
  @Test("another node cannot attach to an exec; the right one can, once; a removed node's execs end")
  func attachIsPerNode() async throws {
    let relay = ExecRelay()
    let (controlA, tokenA) = relay.control(node: "a")
    _ = relay.control(node: "b")
    var start = Deckhand_Server_V1_ExecStreamRequest.Start()
    start.node = "a"
    start.argv = ["true"]
    let (id, pairing) = try relay.open(node: "a", start)
    var requests = controlA.makeAsyncIterator()
    #expect(await requests.next()?.execID == id)
    #expect(throws: DeckhandError.self) { try relay.attach(id, node: "b") }
    _ = try relay.attach(id, node: "a")
    #expect(throws: DeckhandError.self) { try relay.attach(id, node: "a") }
    pairing.agentSink.finish()

    // Removing the node ends its control streams and its waiting execs.
    let (_, waiting) = try relay.open(node: "a", start)
    relay.endNode("a")
    #expect(await requests.next()?.execID != nil)  // the second exec's request was already sent
    #expect(await requests.next() == nil)
    var toOperator = waiting.toOperator.makeAsyncIterator()
    #expect(await toOperator.next() == nil)
    #expect(throws: DeckhandError.self) { try relay.open(node: "a", start) }
    relay.endControl(node: "a", tokenA)
  }
}
