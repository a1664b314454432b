import DeckhandAgent
import DeckhandCore
import DeckhandPluginHost
import DeckhandTestSupport
import Foundation
import Testing

func pid(_ plugin: [String: JSONValue]?) -> Int32? {
  if case .number(let pid) = plugin?["Pid"] { return Int32(pid) }
  return nil
}

@Suite("deckhand agent: installed plugins, re-attach, upgrades", .serialized)
struct AgentTests {
  @Test("plugins outlive a SIGKILLed agent and the next agent re-attaches to the same process")
  func reattachAfterSigkill() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifestFile(["name": "echo", "version": "1.0.0", "entrypoint": Fixtures.echo])
    let first = try AgentProcess(workspace)
    try await first.waitUntilServing()
    let installed = try await first.call(["Command": "plugins.install", "Manifest": .string(manifest)])
    #expect(status(installed) == 0, "\(installed)")
    let before = try #require(pid(try await first.plugin("echo")))

    first.signal(SIGKILL)
    #expect(await first.waitForExit())
    #expect(isAlive(before))

    let second = try AgentProcess(workspace)
    try await second.waitUntilServing()
    let listed = try await second.plugin("echo")
    #expect(pid(listed) == before)
    #expect(await eventually { (try? syncPlugin(second, "echo"))?["State"] == .string("running") })
    let reply = try await second.call(["Command": "plugins.status", "Name": "echo", "Data": "x"])
    #expect(status(reply) == 0, "\(reply)")

    // Remove with cleanup: the process goes, and so does its state.
    let stateDirectory = try workspace.paths.pluginStateDirectory("echo")
    #expect(FileManager.default.fileExists(atPath: stateDirectory))
    let removed = try await second.call(["Command": "plugins.remove", "Name": "echo", "Cleanup": true])
    #expect(status(removed) == 0, "\(removed)")
    #expect(!FileManager.default.fileExists(atPath: stateDirectory))
    #expect(await eventually { !isAlive(before) })
    #expect(try await second.plugin("echo") == nil)
    second.signal(SIGTERM)
    #expect(await second.waitForExit())
    #expect(second.process.terminationStatus == 0)
  }

  @Test("a plugin that died while the agent was down is launched again, and a reused pid is not adopted")
  func relaunchAndPidReuse() async throws {
    let workspace = try TestWorkspace()
    let tag = "reuse-\(UUID().uuidString.prefix(6))"
    let manifest = try workspace.manifestFile(Fixtures.testPlugin("tp", args: [], tag: tag))
    let first = try AgentProcess(workspace)
    try await first.waitUntilServing()
    #expect(status(try await first.call(["Command": "plugins.install", "Manifest": .string(manifest)])) == 0)
    let original = try #require(pid(try await first.plugin("tp")))
    first.signal(SIGKILL)
    #expect(await first.waitForExit())

    // The plugin dies too, and its pid is "reused" by an unrelated process
    // that is alive: the record now points at it.
    kill(original, SIGKILL)
    #expect(await eventually { !isAlive(original) })
    let impostor = Process()
    impostor.executableURL = URL(fileURLWithPath: "/bin/sleep")
    impostor.arguments = ["30"]
    try impostor.run()
    defer { impostor.terminate() }
    let impostorPID = impostor.processIdentifier
    let store = try AgentStore(stateDirectory: workspace.paths.stateDirectory)
    #expect(try store.journalMode() == "wal")
    try store.update("tp") { record in
      record.attachment?.pid = impostorPID
    }

    let second = try AgentProcess(workspace)
    try await second.waitUntilServing()
    #expect(await eventually { (try? syncPlugin(second, "tp"))?["State"] == .string("running") })
    let relaunched = try #require(pid(try await second.plugin("tp")))
    #expect(relaunched != original)
    #expect(relaunched != impostorPID)
    #expect(isAlive(impostorPID))
    #expect(processes(withArgument: tag) == [relaunched])

    // plugins.restart: a new process, counted.
    let restarted = try await second.call(["Command": "plugins.restart", "Name": "tp"])
    #expect(status(restarted) == 0, "\(restarted)")
    let after = try await second.plugin("tp")
    #expect(pid(after) != relaunched)
    #expect(after?["Restarts"] == .number(1))
    #expect(status(try await second.call(["Command": "plugins.restart", "Name": "nope"])) == 105)
    second.signal(SIGTERM)
    #expect(await second.waitForExit())
    for leftover in processes(withArgument: tag) { kill(leftover, SIGKILL) }
  }

  @Test("a left-behind plugin that cannot be taken over is killed, not left beside its replacement")
  func staleProcessKilled() async throws {
    let workspace = try TestWorkspace()
    let tag = "stale-\(UUID().uuidString.prefix(6))"
    let manifest = try workspace.manifestFile(Fixtures.testPlugin("st", args: [], tag: tag))
    let first = try AgentProcess(workspace)
    try await first.waitUntilServing()
    #expect(status(try await first.call(["Command": "plugins.install", "Manifest": .string(manifest)])) == 0)
    let original = try #require(pid(try await first.plugin("st")))
    first.signal(SIGKILL)
    #expect(await first.waitForExit())
    // Its socket file is gone: the process runs but cannot be reached.
    unlink(try workspace.paths.socket("st"))

    let second = try AgentProcess(workspace)
    try await second.waitUntilServing()
    #expect(await eventually { !isAlive(original) })
    #expect(await eventually { (try? syncPlugin(second, "st"))?["State"] == .string("running") })
    let replacement = try #require(pid(try await second.plugin("st")))
    #expect(processes(withArgument: tag) == [replacement])
    second.signal(SIGTERM)
    #expect(await second.waitForExit())
    for leftover in processes(withArgument: tag) { kill(leftover, SIGKILL) }
  }

  @Test("an upgrade that fails its first health check brings the old revision back; a good one replaces it")
  func upgradeRollback() async throws {
    let workspace = try TestWorkspace()
    let tag = "upgrade-\(UUID().uuidString.prefix(6))"
    let good = try workspace.manifestFile(Fixtures.testPlugin("up", args: [], tag: tag))
    let bad = try workspace.manifestFile(
      Fixtures.testPlugin("up", args: ["--exit-without-serving"], tag: tag, extra: ["version": "2.0.0"]))
    let better = try workspace.manifestFile(Fixtures.testPlugin("up", args: [], tag: tag, extra: ["version": "3.0.0"]))
    let agent = try AgentProcess(workspace, extra: ["--stop-plugins-on-exit"])
    try await agent.waitUntilServing()
    #expect(status(try await agent.call(["Command": "plugins.install", "Manifest": .string(good)])) == 0)
    let marker = try workspace.paths.pluginStateDirectory("up") + "/kept"
    try "state".write(toFile: marker, atomically: true, encoding: .utf8)

    let failed = try await agent.call(["Command": "plugins.install", "Manifest": .string(bad)])
    #expect(status(failed) == 105)
    #expect(message(failed).contains("revision 1 (version 1.0.0) runs again"), "\(message(failed))")
    let rolledBack = try await agent.plugin("up")
    #expect(rolledBack?["Revision"] == .number(1))
    #expect(rolledBack?["Version"] == "1.0.0")
    #expect(await eventually { (try? syncPlugin(agent, "up"))?["State"] == .string("running") })
    let logs = try await agent.call(["Command": "plugins.logs", "Name": "up", "Lines": .number(20)])
    #expect("\(logs["Lines"] ?? .null)".contains("giving up before serving"), "\(logs)")

    let upgraded = try await agent.call(["Command": "plugins.install", "Manifest": .string(better)])
    #expect(status(upgraded) == 0, "\(upgraded)")
    let now = try await agent.plugin("up")
    #expect(now?["Revision"] == .number(2))
    #expect(now?["Version"] == "3.0.0")
    #expect(FileManager.default.fileExists(atPath: marker))

    // A first install that cannot start leaves nothing installed.
    let broken = try workspace.manifestFile(
      Fixtures.testPlugin("broken", args: ["--exit-without-serving"], tag: tag))
    let refused = try await agent.call(["Command": "plugins.install", "Manifest": .string(broken)])
    #expect(status(refused) == 105)
    #expect(message(refused).contains("was not installed"))
    #expect(try await agent.plugin("broken") == nil)

    // --stop-plugins-on-exit: SIGTERM stops the plugin too.
    let running = try #require(pid(now))
    agent.signal(SIGTERM)
    #expect(await agent.waitForExit())
    #expect(await eventually { !isAlive(running) })
    #expect(processes(withArgument: tag).isEmpty)
  }

  @Test("built-in commands answer in the guest agent's style")
  func builtins() async throws {
    let workspace = try TestWorkspace()
    let agent = try AgentProcess(
      workspace, extra: ["--node-name", "n1", "--label", "zone=eu", "--command-timeout", "3s"])
    try await agent.waitUntilServing()
    let status = try await agent.call(["Command": "agent.status"])
    #expect(status["Version"] == .string(DeckhandVersion.current))
    #expect(status["Plugins"] == .number(0))
    #expect(status["StateDir"] == .string(workspace.paths.stateDirectory))
    #expect(try await agent.call(["Command": "agent.config.getoption", "Option": "command_timeout"])["Value"] == "3s")
    #expect(
      try await agent.call(["Command": "agent.config.getoption", "Option": "labels"])["Value"]
        == .object(["zone": "eu"]))
    let unknown = try await agent.call(["Command": "agent.config.getoption", "Option": "colour"])
    #expect(DeckhandTestSupport.status(unknown) == 105)
    #expect(message(unknown).contains("unknown option colour"))
    let missing = try await agent.call(["Command": "plugins.status", "Name": "ghost"])
    #expect(message(missing).contains("plugin ghost is not installed"))
    let relative = try await agent.call(["Command": "plugins.install", "Manifest": "plugin.json"])
    #expect(message(relative).contains("absolute path"))

    // The CLI: `deckhand cmd` exits 0 only for Status 0.
    let ok = try await runCommand(Fixtures.deckhand, ["cmd", #"{"Command":"agent.status"}"#, "--socket", agent.socket])
    #expect(ok.status == 0)
    #expect(ok.stdout.contains("\"Status\":0"))
    let bad = try await runCommand(Fixtures.deckhand, ["cmd", #"{"Command":"nope"}"#, "--socket", agent.socket])
    #expect(bad.status == 1)
    #expect(bad.stdout.contains("101"))
    let list = try await runCommand(Fixtures.deckhand, ["plugins", "list", "--socket", agent.socket])
    #expect(list.stdout.contains("no plugins installed"))
    agent.signal(SIGINT)
    #expect(await agent.waitForExit())
    let gone = try await runCommand(Fixtures.deckhand, ["plugins", "list", "--socket", agent.socket])
    #expect(gone.status == 1)
    #expect(gone.stderr.contains("is `deckhand agent` running?"))
  }

  @Test("a TOML config file sets every option; flags win; unknown keys are named")
  func configFile() throws {
    let workspace = try TestWorkspace()
    let file = try workspace.write(
      "agent.toml",
      """
      state_dir = "/srv/state"
      runtime_dir = "/srv/run"
      socket = "/srv/run/c.sock"
      node_name = "web-1"
      labels = { zone = "eu-1", role = "web" }
      socket_mode = "0640"
      socket_group = "daemon"
      command_timeout = "2500ms"
      stop_plugins_on_exit = true
      """)
    var configuration = AgentConfiguration(
      stateDirectory: "/a", runtimeDirectory: "/b", socketPath: "/c", nodeName: "d")
    try configuration.apply(tomlFile: file)
    #expect(configuration.stateDirectory == "/srv/state")
    #expect(configuration.runtimeDirectory == "/srv/run")
    #expect(configuration.socketPath == "/srv/run/c.sock")
    #expect(configuration.nodeName == "web-1")
    #expect(configuration.labels == ["zone": "eu-1", "role": "web"])
    #expect(configuration.socketMode == 0o640)
    #expect(configuration.socketGroup == "daemon")
    #expect(configuration.commandTimeout == .milliseconds(2500))
    #expect(configuration.stopPluginsOnExit)

    let wrong = try workspace.write("bad.toml", "colour = \"blue\"\n")
    #expect(throws: DeckhandError.self) { try configuration.apply(tomlFile: wrong) }
    let typed = try workspace.write("typed.toml", "command_timeout = \"soon\"\n")
    do {
      try configuration.apply(tomlFile: typed)
      Issue.record("accepted a bad duration")
    } catch let error as DeckhandError {
      #expect(error.message.contains("command_timeout"))
    }
  }
}

/// plugins.list entry, from a synchronous context (for `eventually`).
func syncPlugin(_ agent: AgentProcess, _ name: String) throws -> [String: JSONValue]? {
  guard case .array(let plugins) = try CommandClient.send(["Command": "plugins.list"], socket: agent.socket)["Plugins"]
  else { return nil }
  for case .object(let plugin) in plugins where plugin["Name"] == .string(name) { return plugin }
  return nil
}
