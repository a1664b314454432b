import DeckhandCore
import DeckhandGRPC
import DeckhandPluginHost
import DeckhandProtocol
import Foundation
import Logging
import Synchronization
import Testing

@Suite("PluginCommandRouter: plugins' commands on the command socket")
struct PluginCommandRouterTests {
  /// The store, in memory.
  final class MemoryStore: PluginDataStore {
    private let state = Mutex<(kv: [String: [UInt8]], commands: [String: String])>(([:], [:]))
    func kvGet(_ plugin: String, _ key: String) throws -> [UInt8]? { state.withLock { $0.kv["\(plugin)/\(key)"] } }
    func kvSet(_ plugin: String, _ key: String, _ value: [UInt8]) throws {
      state.withLock { $0.kv["\(plugin)/\(key)"] = value }
    }
    func kvDelete(_ plugin: String, _ key: String) throws -> Bool {
      state.withLock { $0.kv.removeValue(forKey: "\(plugin)/\(key)") != nil }
    }
    func kvList(_ plugin: String, prefix: String) throws -> [String] {
      state.withLock { $0.kv.keys.filter { $0.hasPrefix("\(plugin)/\(prefix)") }.sorted() }
    }
    func commands() throws -> [(name: String, plugin: String)] {
      state.withLock { $0.commands.map { ($0.key, $0.value) }.sorted { $0.name < $1.name } }
    }
    func addCommand(_ name: String, plugin: String) throws { state.withLock { $0.commands[name] = plugin } }
    func removeCommand(_ name: String) throws { state.withLock { _ = $0.commands.removeValue(forKey: name) } }
  }

  /// Answers every command with `{"plugin": NAME, "echo": REQUEST}`.
  static let forward: PluginCommandRouter.Forward = { plugin, request in
    var response = Deckhand_Host_V1_HandleCommandResponse()
    let echoed = (try? JSONValue.parse(Array(request.requestJson))) ?? .null
    response.responseJson = Data(JSONValue.object(["plugin": .string(plugin), "echo": echoed]).serialized() ?? [])
    return response
  }

  static func router(_ store: MemoryStore = MemoryStore()) -> PluginCommandRouter {
    PluginCommandRouter(registry: CommandRegistry(), store: store, logger: Logger(label: "test"))
  }

  static func code(_ body: () throws -> Void) -> GRPCStatusCode? {
    do {
      try body()
      return nil
    } catch let error as GRPCCallError {
      return error.code
    } catch {
      return .unknown
    }
  }

  @Test("a registered command reaches its plugin with the whole request")
  func routes() async throws {
    let router = Self.router()
    try router.register("counter.get", for: "counter", forward: Self.forward)
    guard case .waiting(let handler) = router.registry.handler(for: "counter.get") else {
      Issue.record("no waiting handler registered")
      return
    }
    let answer = try await handler(["Command": "counter.get", "Extra": 1])
    #expect(answer["plugin"] == .string("counter"))
    #expect(answer["echo"] == .object(["Command": "counter.get", "Extra": 1]))
  }

  @Test(
    "names that are empty, have spaces, or are the agent's are refused",
    arguments: [
      ("", GRPCStatusCode.invalidArgument), ("two words", .invalidArgument), ("agent.status", .permissionDenied),
      ("plugins.install", .permissionDenied),
    ])
  func refusesNames(name: String, expected: GRPCStatusCode) {
    let router = Self.router()
    #expect(Self.code { try router.register(name, for: "evil", forward: Self.forward) } == expected)
    #expect(router.registry.names.isEmpty)
  }

  @Test("a plugin cannot take, or take off, another plugin's command")
  func ownership() throws {
    let router = Self.router()
    try router.register("shared.cmd", for: "first", forward: Self.forward)
    #expect(Self.code { try router.register("shared.cmd", for: "second", forward: Self.forward) } == .alreadyExists)
    #expect(Self.code { try router.unregister("shared.cmd", for: "second") } == .notFound)
    #expect(router.registry.names == ["shared.cmd"])
    try router.unregister("shared.cmd", for: "first")
    #expect(router.registry.names.isEmpty)
  }

  @Test("registering again by the owner is harmless")
  func idempotent() throws {
    let router = Self.router()
    try router.register("a.b", for: "p", forward: Self.forward)
    try router.register("a.b", for: "p", forward: Self.forward)
    #expect(router.registry.names == ["a.b"])
  }

  @Test("after a restart, only commands whose plugin still allows them come back")
  func restore() throws {
    let store = MemoryStore()
    try store.addCommand("keep.me", plugin: "p")
    try store.addCommand("drop.me", plugin: "p")
    try store.addCommand("gone.plugin", plugin: "q")
    let router = Self.router(store)
    try router.restore(allowed: { name, plugin in plugin == "p" && name == "keep.me" }, forward: Self.forward)
    #expect(router.registry.names == ["keep.me"])
    #expect(try store.commands().map(\.name) == ["keep.me"])
  }
}
