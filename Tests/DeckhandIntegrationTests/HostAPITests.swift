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

  /// What a test plugin's Host API call (GetStatus "host:OP:ARG" or
  /// "host-at:SOCKET|OP:ARG") answered: its results joined.
  func host(_ agent: AgentProcess, _ plugin: String, _ request: String) async throws -> String {
    let reply = try await agent.call(["Command": "plugins.status", "Name": .string(plugin), "Data": .string(request)])
    guard case .array(let results) = reply["Results"] else { return "\(reply)" }
    return results.compactMap { if case .string(let text) = $0 { text } else { nil } }.joined(separator: " ")
  }

  @Test("the caller is known from its socket: own keys only, and calls only to plugins it may call")
  func identityAndPermissions() async throws {
    let workspace = try TestWorkspace()
    let tag = UUID().uuidString
    let counter = try workspace.manifestFile(["name": "counter", "version": "1.0.0", "entrypoint": Self.counter])
    let plain = try workspace.manifestFile(Fixtures.testPlugin("plain", args: [], tag: tag))
    let caller = try workspace.manifestFile(
      Fixtures.testPlugin("caller", args: [], tag: tag, extra: ["permissions": ["call": ["counter"]]]))
    let agent = try AgentProcess(workspace, extra: ["--stop-plugins-on-exit"])
    try await agent.waitUntilServing()
    for manifest in [counter, plain, caller] {
      #expect(status(try await agent.call(["Command": "plugins.install", "Manifest": .string(manifest)])) == 0)
    }
    _ = try await agent.call(["Command": "plugins.apply", "Name": "counter", "TypeURL": "t/x", "Value": "1"])
    #expect(try await count(agent) == "count=1")

    // Each plugin sees its own keys only.
    #expect(try await host(agent, "plain", "host:get:count") == "missing")
    #expect(try await host(agent, "plain", "host:set:count=99") == "ok")
    #expect(try await host(agent, "plain", "host:get:count") == "found=99")
    #expect(try await count(agent) == "count=1")

    let refused = try await host(agent, "plain", "host:call:counter")
    #expect(refused.contains("permissionDenied") && refused.contains("permission \"call\""), "\(refused)")
    #expect(try await host(agent, "caller", "host:call:counter") == "called count=1")

    // Another plugin's socket admits only that plugin's processes, also for a process of the same user.
    let counterSocket = try workspace.paths.hostAPISocket("counter")
    let intruder = try await host(agent, "plain", "host-at:\(counterSocket)|get:count")
    #expect(intruder.contains("error=") && intruder.contains("belongs to plugin counter"), "\(intruder)")
    // Nor may any other local process, such as this test.
    let outsider = try await LeanGRPCClient.connect(unixSocket: counterSocket)
    var get = Deckhand_Host_V1_KVGetRequest()
    get.key = "count"
    await #expect {
      let _: Deckhand_Host_V1_KVGetResponse = try await outsider.message(
        "/deckhand.host.v1.Host/KVGet", get, timeout: .seconds(10))
    } throws: { error in
      (error as? GRPCCallError)?.code == .permissionDenied
        && (error as? GRPCCallError)?.message.contains("pid \(getpid())") == true
    }
    await outsider.close()

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
    let tag = UUID().uuidString
    let plain = try workspace.manifestFile(Fixtures.testPlugin("plain", args: [], tag: tag))
    let wide = try workspace.manifestFile(
      Fixtures.testPlugin("wide", args: [], tag: tag, extra: ["permissions": ["commands": ["*"]]]))
    let agent = try AgentProcess(workspace, extra: ["--stop-plugins-on-exit"])
    try await agent.waitUntilServing()
    for manifest in [plain, wide] {
      #expect(status(try await agent.call(["Command": "plugins.install", "Manifest": .string(manifest)])) == 0)
    }
    let refused = try await host(agent, "plain", "host:register:plain.hello")
    #expect(refused.contains("permissionDenied") && refused.contains("permission \"commands\""), "\(refused)")
    #expect(try await host(agent, "wide", "host:register:agent.status").contains("permissionDenied"))
    #expect(try await host(agent, "wide", "host:register:wide.hello") == "ok")
    #expect(try await host(agent, "wide", "host:register:wide.hello") == "ok", "registering again succeeds")

    // The request reaches the plugin; the test plugin has no handler, so
    // the caller gets 105 with the plugin's error.
    let answer = try await agent.call(["Command": "wide.hello", "Extra": .number(1)])
    #expect(status(answer) == 105, "\(answer)")
    if case .string(let message) = answer["StatusMessage"] {
      #expect(message.contains("no handler for command wide.hello"), "\(message)")
    }
    // Another plugin can neither take nor drop it, not through its own socket nor through wide's.
    #expect(try await host(agent, "plain", "host:unregister:wide.hello").contains("notFound"))
    let wideSocket = try workspace.paths.hostAPISocket("wide")
    #expect(
      try await host(agent, "plain", "host-at:\(wideSocket)|unregister:wide.hello").contains("belongs to plugin wide"))
    #expect(status(try await agent.call(["Command": "wide.hello"])) == 105)
    #expect(try await host(agent, "wide", "host:unregister:wide.hello") == "ok")
    #expect(status(try await agent.call(["Command": "wide.hello"])) == 101)
    // Removing the plugin takes its commands off the socket.
    #expect(try await host(agent, "wide", "host:register:wide.bye") == "ok")
    #expect(status(try await agent.call(["Command": "wide.bye"])) == 105)
    #expect(status(try await agent.call(["Command": "plugins.remove", "Name": "wide"])) == 0)
    #expect(status(try await agent.call(["Command": "wide.bye"])) == 101)
    agent.signal(SIGTERM)
    #expect(await agent.waitForExit())
  }

  @Test("two plugins run as the same user cannot reach each other's Host API")
  func sameUser() async throws {
    let workspace = try TestWorkspace()
    let tag = UUID().uuidString
    let isolation: [String: Any] = ["isolation": ["user": "daemon"]]
    let first = try workspace.manifestFile(Fixtures.testPlugin("first", args: [], tag: tag, extra: isolation))
    let second = try workspace.manifestFile(Fixtures.testPlugin("second", args: [], tag: tag, extra: isolation))
    let agent = try AgentProcess(workspace, extra: ["--stop-plugins-on-exit"])
    try await agent.waitUntilServing()
    for manifest in [first, second] {
      let installed = try await agent.call(["Command": "plugins.install", "Manifest": .string(manifest)])
      #expect(status(installed) == 0, "\(installed)")
    }
    #expect(try await host(agent, "first", "host:set:secret=first's") == "ok")
    #expect(try await host(agent, "first", "host:get:secret") == "found=first's")
    let firstSocket = try workspace.paths.hostAPISocket("first")
    let daemon = getpwnam("daemon").pointee.pw_uid
    var info = stat()
    #expect(stat(firstSocket, &info) == 0 && info.st_uid == daemon, "the socket is the same user's: only the pid tells")
    for request in ["get:secret", "set:secret=stolen", "register:first.x"] {
      let answer = try await host(agent, "second", "host-at:\(firstSocket)|\(request)")
      #expect(answer.contains("error=") && answer.contains("belongs to plugin first"), "\(request): \(answer)")
    }
    #expect(try await host(agent, "first", "host:get:secret") == "found=first's")
    agent.signal(SIGTERM)
    #expect(await agent.waitForExit())
  }

  @Test("a plugin run as another user reaches only its own state: not the agent's, nor another plugin's")
  func traversal() async throws {
    let workspace = try TestWorkspace()
    let tag = UUID().uuidString
    let confined = try workspace.manifestFile(
      Fixtures.testPlugin("confined", args: [], tag: tag, extra: ["isolation": ["user": "daemon"]]))
    let neighbour = try workspace.manifestFile(Fixtures.testPlugin("neighbour", args: [], tag: tag))
    let agent = try AgentProcess(workspace, extra: ["--stop-plugins-on-exit"])
    try await agent.waitUntilServing()
    for manifest in [confined, neighbour] {
      let installed = try await agent.call(["Command": "plugins.install", "Manifest": .string(manifest)])
      #expect(status(installed) == 0, "\(installed)")
    }
    let paths = workspace.paths
    let own = try paths.pluginStateDirectory("confined")
    #expect(try await host(agent, "confined", "write:\(own)/mine") == "write=ok")
    #expect(try await host(agent, "confined", "read:\(own)") == "read=ok")
    let forbidden = [
      paths.stateDirectory, "\(paths.stateDirectory)/agent.sqlite", "\(paths.stateDirectory)/plugins",
      try paths.pluginStateDirectory("neighbour"), "\(paths.stateDirectory)/logs", try paths.stderrLog("neighbour"),
      paths.runtimeDirectory, try paths.socketFolder("neighbour"),
    ]
    for path in forbidden {
      #expect(try await host(agent, "confined", "read:\(path)") == "read=refused", "\(path)")
    }
    #expect(try await host(agent, "confined", "write:\(paths.stateDirectory)/planted") == "write=refused")
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
