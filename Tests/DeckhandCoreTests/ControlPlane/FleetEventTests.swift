import DeckhandCore
import Testing

@Suite("FleetEvent: what agents may report")
struct FleetEventTests {
  @Test("only plugin kinds with valid names are taken from an agent; the server's clock, a bounded message")
  func reportedByAgents() throws {
    #expect(
      FleetEvent.reported(kind: "node.removed", plugin: "echo", message: "", nodeId: "n", nodeName: "w", nowMs: 5)
        == nil, "an agent may not claim node events")
    #expect(
      FleetEvent.reported(kind: "plugin.exploded", plugin: "echo", message: "", nodeId: "n", nodeName: "w", nowMs: 5)
        == nil)
    #expect(
      FleetEvent.reported(kind: "plugin.crashed", plugin: "../x", message: "", nodeId: "n", nodeName: "w", nowMs: 5)
        == nil)
    let long = String(repeating: "é", count: 2000)
    let event = try #require(
      FleetEvent.reported(kind: "plugin.oom", plugin: "echo", message: long, nodeId: "n", nodeName: "w", nowMs: 5))
    #expect(event.kind == .pluginOOM && event.atMs == 5 && event.nodeName == "w")
    #expect(event.message.utf8.count <= FleetEvent.maxReportedMessage && event.message.utf8.count >= 1020)
  }

  @Test("a filter matches a node by id or name, and a plugin exactly")
  func matches() {
    let event = FleetEvent(atMs: 1, kind: .pluginCrashed, nodeId: "id1", nodeName: "web-1", plugin: "echo")
    #expect(event.matches(node: "id1", plugin: nil) && event.matches(node: "web-1", plugin: "echo"))
    #expect(!event.matches(node: "web-2", plugin: nil) && !event.matches(node: nil, plugin: "ech"))
  }
}
