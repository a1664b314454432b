import DeckhandClient
import DeckhandCore
import DeckhandProtocol
import SwiftProtobuf
import Testing

@Suite("ProtoJSON: --json prints every field")
struct ProtoJSONTests {
  private func object(_ message: some SwiftProtobuf.Message) throws -> [String: JSONValue] {
    guard case .object(let fields) = try ProtoJSON.server.value(of: message) else {
      Issue.record("not an object")
      return [:]
    }
    return fields
  }

  @Test("a worker token prints its role, its zero times and revoked: false")
  func defaultsOfScalarsAndEnums() throws {
    var token = Deckhand_Control_V1_Token()
    token.id = "t1"
    token.role = .worker
    let fields = try object(token)
    #expect(fields["role"] == "ROLE_WORKER")
    #expect(fields["id"] == "t1")
    #expect(fields["created_ms"] == "0")
    #expect(fields["expires_ms"] == "0")
    #expect(fields["revoked"] == false)
    #expect(fields["description"] == "")
    #expect(fields["labels"] == .object([:]) && fields["allowed_label_keys"] == .array([]))
    #expect(fields.count == 8)
  }

  @Test("a node prints an unset description as null and a set one with all its fields")
  func nestedMessages() throws {
    var node = Deckhand_Dispatcher_V1_Node()
    node.name = "web-1"
    #expect(try object(node)["description"] == .null)
    #expect(try object(node)["status"] == "NODE_STATUS_UNKNOWN")

    node.description_p.hostname = "web-1"
    node.status = .ready
    let description = try object(node)["description"]
    #expect(
      description
        == .object([
          "hostname": "web-1", "labels": .object([:]), "platform": "", "agent_version": "",
          "plugins": .object([:]), "address": "",
        ]))
    #expect(try object(node)["status"] == "NODE_STATUS_READY")
  }

  @Test("lists of messages are completed item by item; an unset oneof stays out")
  func listsAndOneofs() throws {
    var response = Deckhand_Control_V1_ListNodesResponse()
    response.nodes = [Deckhand_Dispatcher_V1_Node(), Deckhand_Dispatcher_V1_Node()]
    guard case .array(let nodes) = try object(response)["nodes"] else {
      Issue.record("nodes is not an array")
      return
    }
    #expect(nodes.count == 2)
    for node in nodes { #expect(node == .object(try object(Deckhand_Dispatcher_V1_Node()))) }
    #expect(try object(Deckhand_Control_V1_ListNodesResponse())["nodes"] == .array([]))

    let target = try object(Deckhand_Server_V1_JobTarget())
    #expect(target["any"] == nil && target["runner_id"] == nil)
    #expect(target["labels"] == .object([:]))
    var chosen = Deckhand_Server_V1_JobTarget()
    chosen.runnerID = "node-1"
    #expect(try object(chosen)["runner_id"] == "node-1")
    #expect(try object(chosen)["any"] == nil)
  }

  @Test("a list prints as an array, one message alone with single")
  func text() throws {
    var token = Deckhand_Control_V1_Token()
    token.id = "t1"
    let list = try ProtoJSON.server.text(of: [token])
    #expect(list.hasPrefix("[{") && list.contains(#""role":"ROLE_WORKER""#))
    let single = try ProtoJSON.server.text(of: [token], single: true)
    #expect(single.hasPrefix("{") && single.contains(#""revoked":false"#))
  }
}
