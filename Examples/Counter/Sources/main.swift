// deckhand-example-counter: counts the Apply calls it receives in its Host
// API key-value store, so the count survives restarts of the plugin and of
// the agent, reports it in GetStatus, and answers `counter.get` on the
// agent's command socket:
//   echo '{"Command": "counter.get"}' | deckhand cmd
import DeckhandPlugin

final class Counter: Plugin {
  func start(_ context: StartContext) async throws {
    let host = try await HostClient.connect()
    do {
      try await host.registerCommand("counter.get")
    } catch let failure as DeckhandError where failure.code == .permissionDenied {
      // The manifest does not grant `commands`: count without the command.
      try await host.log(.warning, "counter.get not registered: \(failure.message)")
    }
    try await host.log(.info, "counter starting", fields: ["count": String(try await count(host))])
  }

  func apply(_ payload: Google_Protobuf_Any) async throws {
    let host = try await HostClient.connect()
    let next = try await count(host) + 1
    try await host.set("count", Array(String(next).utf8))
    try await host.emitEvent("counted", fields: ["count": String(next), "type": payload.typeURL])
  }

  func status(data: String?) async throws -> PluginStatus {
    let host = try await HostClient.connect()
    return PluginStatus(code: 0, results: ["count=\(try await count(host))"])
  }

  func command(_ name: String, request: [String: JSONValue]) async throws -> [String: JSONValue] {
    guard name == "counter.get" else {
      throw DeckhandError(.notFound, "unknown command \(name); this plugin answers counter.get")
    }
    return ["Count": .number(Double(try await count(try await HostClient.connect())))]
  }

  private func count(_ host: HostClient) async throws -> Int {
    guard let bytes = try await host.get("count") else { return 0 }
    return Int(String(decoding: bytes, as: UTF8.self)) ?? 0
  }
}

PluginServer.main(Counter())
