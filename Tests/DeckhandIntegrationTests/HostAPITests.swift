import DeckhandAgent
import DeckhandCore
import DeckhandGRPC
import DeckhandPluginHost
import DeckhandProtocol
import DeckhandTestSupport
import Foundation
import NIOCore
import SwiftProtobuf
import Testing

@Suite("Host API", .serialized)
struct HostAPITests {
  static var counter: String { "\(Fixtures.binDirectory)/deckhand-example-counter" }

  func count(_ agent: AgentProcess) async throws -> String {
    let reply = try await agent.call(["Command": "plugins.status", "Name": "counter"])
    guard case .array(let results) = reply["Results"], case .string(let first) = results.first else {
      return "\(reply)"
    }
    return first
  }

  @Test("the counter example keeps its count in the Host API across restarts of plugin and agent")
  func counterSurvives() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifestFile([
      "name": "counter", "version": "1.0.0", "entrypoint": Self.counter, "permissions": ["commands": ["counter.*"]],
    ])
    let first = try AgentProcess(workspace)
    try await first.waitUntilServing()
    #expect(status(try await first.call(["Command": "plugins.install", "Manifest": .string(manifest)])) == 0)
    for _ in 0..<3 {
      let applied = try await first.call([
        "Command": "plugins.apply", "Name": "counter", "TypeURL": "t/x", "Value": "1",
      ])
      #expect(status(applied) == 0, "\(applied)")
    }
    #expect(try await count(first) == "count=3")
    // The command the counter registered answers on the command socket.
    #expect(try await first.call(["Command": "counter.get"])["Count"] == .number(3))
    let restarted = try await first.call(["Command": "plugins.restart", "Name": "counter"])
    #expect(status(restarted) == 0)
    let afterRestart = try await count(first)
    #expect(
      afterRestart == "count=3",
      "\(restarted) \((try? String(contentsOfFile: first.log, encoding: .utf8)) ?? "")")

    let pluginPID = try #require(pid(try await first.plugin("counter")))
    first.signal(SIGKILL)
    #expect(await first.waitForExit())
    let second = try AgentProcess(workspace)
    try await second.waitUntilServing()
    #expect(pid(try await second.plugin("counter")) == pluginPID)
    // The re-attached plugin reaches the new agent's Host API on its own.
    _ = try await second.call(["Command": "plugins.apply", "Name": "counter", "TypeURL": "t/x", "Value": "1"])
    #expect(try await count(second) == "count=4")
    // The registration outlived the agent: it came back from the database.
    let got = try await second.call(["Command": "counter.get"])
    #expect(status(got) == 0 && got["Count"] == .number(4), "\(got)")
    #expect((try? String(contentsOfFile: second.log, encoding: .utf8))?.contains("plugin event") == true)
    second.signal(SIGTERM)
    #expect(await second.waitForExit())
    kill(pluginPID, SIGKILL)
  }

  @Test("the caller is known from its socket: own keys only, and calls only to plugins it may call")
  func identityAndPermissions() async throws {
    let workspace = try TestWorkspace()
    let counter = try workspace.manifestFile(["name": "counter", "version": "1.0.0", "entrypoint": Self.counter])
    let plain = try workspace.manifestFile(["name": "plain", "version": "1.0.0", "entrypoint": Fixtures.echo])
    let caller = try workspace.manifestFile(
      ["name": "caller", "version": "1.0.0", "entrypoint": Fixtures.echo, "permissions": ["call": ["counter"]]])
    let agent = try AgentProcess(workspace, extra: ["--stop-plugins-on-exit"])
    try await agent.waitUntilServing()
    for manifest in [counter, plain, caller] {
      #expect(status(try await agent.call(["Command": "plugins.install", "Manifest": .string(manifest)])) == 0)
    }
    _ = try await agent.call(["Command": "plugins.apply", "Name": "counter", "TypeURL": "t/x", "Value": "1"])

    func client(_ name: String) async throws -> LeanGRPCClient {
      try await LeanGRPCClient.connect(unixSocket: "\(workspace.paths.runtimeDirectory)/\(name).host.sock")
    }
    func call<R: SwiftProtobuf.Message>(
      _ client: LeanGRPCClient, _ method: String, _ request: some SwiftProtobuf.Message
    )
      async throws -> R
    {
      try await client.message("/deckhand.host.v1.Host/\(method)", request, timeout: .seconds(10))
    }
    var get = Deckhand_Host_V1_KVGetRequest()
    get.key = "count"
    let plainClient = try await client("plain")
    let counterClient = try await client("counter")
    let seenByPlain: Deckhand_Host_V1_KVGetResponse = try await call(plainClient, "KVGet", get)
    let seenByCounter: Deckhand_Host_V1_KVGetResponse = try await call(counterClient, "KVGet", get)
    #expect(!seenByPlain.found)
    #expect(seenByCounter.found && seenByCounter.value == Data("1".utf8))

    var callCounter = Deckhand_Host_V1_CallPluginRequest()
    callCounter.plugin = "counter"
    callCounter.status = ""
    do {
      let _: Deckhand_Host_V1_CallPluginResponse = try await call(plainClient, "CallPlugin", callCounter)
      Issue.record("plain called counter without permission")
    } catch let error as GRPCCallError {
      #expect(error.code == .permissionDenied)
      #expect(error.message.contains("permission \"call\""), "\(error.message)")
    }
    let callerClient = try await client("caller")
    let answer: Deckhand_Host_V1_CallPluginResponse = try await call(callerClient, "CallPlugin", callCounter)
    #expect(answer.results == ["count=1"])
    for open in [plainClient, counterClient, callerClient] { await open.close() }

    // Remove with cleanup forgets the plugin's keys too.
    #expect(status(try await agent.call(["Command": "plugins.remove", "Name": "counter", "Cleanup": true])) == 0)
    let store = try AgentStore(stateDirectory: workspace.paths.stateDirectory)
    #expect(try store.kvList("counter", prefix: "").isEmpty)
    agent.signal(SIGTERM)
    #expect(await agent.waitForExit())
  }

  @Test("commands: a plugin registers only what permissions.commands allows, and only the owner answers")
  func registeredCommands() async throws {
    let workspace = try TestWorkspace()
    let plain = try workspace.manifestFile(["name": "plain", "version": "1.0.0", "entrypoint": Fixtures.echo])
    let wide = try workspace.manifestFile(
      ["name": "wide", "version": "1.0.0", "entrypoint": Fixtures.echo, "permissions": ["commands": ["*"]]])
    let agent = try AgentProcess(workspace, extra: ["--stop-plugins-on-exit"])
    try await agent.waitUntilServing()
    for manifest in [plain, wide] {
      #expect(status(try await agent.call(["Command": "plugins.install", "Manifest": .string(manifest)])) == 0)
    }
    let plainClient = try await LeanGRPCClient.connect(
      unixSocket: "\(workspace.paths.runtimeDirectory)/plain.host.sock")
    let wideClient = try await LeanGRPCClient.connect(unixSocket: "\(workspace.paths.runtimeDirectory)/wide.host.sock")
    func register(_ client: LeanGRPCClient, _ name: String, unregister: Bool = false) async -> GRPCCallError? {
      do {
        if unregister {
          var request = Deckhand_Host_V1_UnregisterCommandRequest()
          request.name = name
          let _: Deckhand_Host_V1_UnregisterCommandResponse = try await client.message(
            "/deckhand.host.v1.Host/UnregisterCommand", request, timeout: .seconds(10))
        } else {
          var request = Deckhand_Host_V1_RegisterCommandRequest()
          request.name = name
          let _: Deckhand_Host_V1_RegisterCommandResponse = try await client.message(
            "/deckhand.host.v1.Host/RegisterCommand", request, timeout: .seconds(10))
        }
        return nil
      } catch let error as GRPCCallError {
        return error
      } catch {
        return GRPCCallError(.unknown, "\(error)")
      }
    }

    let refused = await register(plainClient, "plain.hello")
    #expect(refused?.code == .permissionDenied)
    #expect(refused?.message.contains("permission \"commands\"") == true, "\(String(describing: refused))")
    #expect(await register(wideClient, "agent.status")?.code == .permissionDenied)
    #expect(await register(wideClient, "wide.hello") == nil)
    #expect(await register(wideClient, "wide.hello") == nil, "registering again succeeds")

    // The request reaches the plugin; the echo example has no handler, so
    // the caller gets 105 with the plugin's error.
    let answer = try await agent.call(["Command": "wide.hello", "Extra": .number(1)])
    #expect(status(answer) == 105, "\(answer)")
    if case .string(let message) = answer["StatusMessage"] {
      #expect(message.contains("no handler for command wide.hello"), "\(message)")
    }
    // Another plugin can neither take nor drop it.
    #expect(await register(plainClient, "wide.hello", unregister: true)?.code == .notFound)
    #expect(await register(wideClient, "wide.hello", unregister: true) == nil)
    #expect(status(try await agent.call(["Command": "wide.hello"])) == 101)
    // Removing the plugin takes its commands off the socket.
    #expect(await register(wideClient, "wide.bye") == nil)
    #expect(status(try await agent.call(["Command": "wide.bye"])) == 105)
    #expect(status(try await agent.call(["Command": "plugins.remove", "Name": "wide"])) == 0)
    #expect(status(try await agent.call(["Command": "wide.bye"])) == 101)
    for open in [plainClient, wideClient] { await open.close() }
    agent.signal(SIGTERM)
    #expect(await agent.waitForExit())
  }

  @Test("a plugin run as another user reaches its Host API: the socket is given to that user")
  func otherUser() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifestFile([
      "name": "counter", "version": "1.0.0", "entrypoint": Self.counter, "isolation": ["user": "daemon"],
      "permissions": ["commands": ["counter.*"]],
    ])
    let agent = try AgentProcess(workspace, extra: ["--stop-plugins-on-exit"])
    try await agent.waitUntilServing()
    let installed = try await agent.call(["Command": "plugins.install", "Manifest": .string(manifest)])
    #expect(status(installed) == 0, "\(installed)")
    _ = try await agent.call(["Command": "plugins.apply", "Name": "counter", "TypeURL": "t/x", "Value": "1"])
    #expect(try await count(agent) == "count=1")
    #expect(try await agent.call(["Command": "counter.get"])["Count"] == .number(1))
    var info = stat()
    #expect(stat("\(workspace.paths.runtimeDirectory)/counter.host.sock", &info) == 0)
    #expect(info.st_uid == getpwnam("daemon").pointee.pw_uid && info.st_mode & 0o777 == 0o600)
    agent.signal(SIGTERM)
    #expect(await agent.waitForExit())
  }
}
