import DeckhandAgent
import DeckhandCore
import DeckhandPluginHost
import DeckhandTestSupport
import Foundation
import Testing

/// An agent killed at any moment comes back with each plugin running
/// exactly once.
@Suite("deckhand agent: SIGKILL during installs and upgrades", .serialized)
struct AgentKillTests {
  @Test("SIGKILL 0-400 ms into each of 30 installs and upgrades: after every restart the plugin runs once and answers")
  func killDuringInstalls() async throws {
    let workspace = try TestWorkspace()
    let tag = "killed-\(UUID().uuidString.prefix(6))"
    var findings: [String] = []
    for round in 1...30 {
      let manifest = try workspace.manifestFile(
        Fixtures.testPlugin("victim", args: [], tag: tag, extra: ["version": "1.0.\(round)"]))
      let agent = try AgentProcess(workspace)
      try await agent.waitUntilServing()
      try await settled(agent, tag: tag, round: round, findings: &findings)
      let delay = Int.random(in: 0...400)
      await withTaskGroup(of: Void.self) { group in
        group.addTask { _ = try? await agent.call(["Command": "plugins.install", "Manifest": .string(manifest)]) }
        group.addTask {
          try? await Task.sleep(for: .milliseconds(delay))
          agent.signal(SIGKILL)
        }
      }
      #expect(await agent.waitForExit())
    }
    let last = try AgentProcess(workspace)
    defer { last.signal(SIGKILL) }
    try await last.waitUntilServing()
    try await settled(last, tag: tag, round: 13, findings: &findings)
    #expect(findings.isEmpty, "\(findings.joined(separator: "\n"))")
    // The plugin is removed with everything it ran.
    _ = try await last.call(["Command": "plugins.remove", "Name": "victim", "Cleanup": true])
    #expect(await eventually { processes(withArgument: tag).isEmpty })
  }

  /// Once the agent has settled: the plugin, if installed, runs in exactly
  /// one process and answers; if not, none of its processes runs.
  func settled(_ agent: AgentProcess, tag: String, round: Int, findings: inout [String]) async throws {
    let listed = try await agent.plugin("victim")
    guard listed != nil else {
      let left = await eventually(timeout: .seconds(5)) { processes(withArgument: tag).isEmpty }
      if !left { findings.append("round \(round): not installed, yet \(processes(withArgument: tag)) run") }
      return
    }
    let running = await eventually(timeout: .seconds(15)) {
      (try? syncPlugin(agent, "victim"))?["State"] == .string("running") && processes(withArgument: tag).count == 1
    }
    if !running {
      findings.append(
        "round \(round): \(String(describing: try? syncPlugin(agent, "victim"))), processes \(processes(withArgument: tag))"
      )
      return
    }
    let reply = try await agent.call(["Command": "plugins.status", "Name": "victim", "Data": "x"])
    if status(reply) != 0 { findings.append("round \(round): status \(reply)") }
  }
}

@Suite("deckhand agent: a plugin in a crash loop", .serialized)
struct CrashLoopTests {
  /// Open descriptors, resident memory (KiB) and zombie children of `pid`.
  func footprint(_ pid: Int32) -> (fds: Int, rssKiB: Int, zombies: Int) {
    let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let rss =
      status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
      .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? -1
    var zombies = 0
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int32(entry) != nil {
      guard let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
        let fields = stat.split(separator: ")").last?.split(separator: " "), fields.count > 2
      else { continue }
      if fields[0] == "Z" && Int32(fields[1]) == pid { zombies += 1 }
    }
    return (fds, rss, zombies)
  }

  func restarts(_ agent: AgentProcess) -> Int {
    if case .number(let count) = (try? syncPlugin(agent, "litter"))?["Restarts"] { return Int(count) }
    return 0
  }

  @Test(
    "a plugin that starts a child and crashes 5 ms after each Start, restarted 300 times: no child survives; descriptors, memory and zombies stay flat"
  )
  func crashLoop() async throws {
    let workspace = try TestWorkspace()
    let armed = workspace.root + "/armed"
    let manifest = try workspace.manifestFile(
      Fixtures.testPlugin(
        "litter",
        args: ["--spawn-child", workspace.root + "/child.pid", "--crash-after-ms", "5", "--crash-if-exists", armed],
        tag: UUID().uuidString, extra: ["restart": ["initial_backoff_s": 0.01, "max_backoff_s": 0.02]]))
    let agent = try AgentProcess(workspace)
    defer { agent.signal(SIGKILL) }
    try await agent.waitUntilServing()
    #expect(status(try await agent.call(["Command": "plugins.install", "Manifest": .string(manifest)])) == 0)
    // Every process the agent's plugins run carries its owner entry.
    let owned = ProcessSweep(
      marker: "\(PluginLauncher.ownerKeyName)=\(ProcessSweep.ownerKey(workspace.paths.stateDirectory))")
    #expect(owned.members().count == 2, "the plugin and its child")
    FileManager.default.createFile(atPath: armed, contents: nil)
    let first = try #require(pid(try await agent.plugin("litter")))
    kill(first, SIGKILL)

    #expect(await eventually(timeout: .seconds(60)) { restarts(agent) >= 30 })
    let before = footprint(agent.process.processIdentifier)
    var most = 0
    let looped = await eventually(timeout: .seconds(120)) {
      most = max(most, owned.members().count)
      return restarts(agent) >= 300
    }
    #expect(looped, "restarts: \(restarts(agent))")
    let after = footprint(agent.process.processIdentifier)
    #expect(most <= 4, "at most the current plugin and its child (and one being swept) run; saw \(most)")
    #expect(after.fds <= before.fds + 8, "descriptors \(before.fds) -> \(after.fds)")
    #expect(after.rssKiB <= before.rssKiB + 24 * 1024, "RSS \(before.rssKiB) -> \(after.rssKiB) KiB")
    #expect(after.zombies <= 1, "zombies: \(after.zombies)")
    // Disarmed and removed: nothing of it is left.
    try? FileManager.default.removeItem(atPath: armed)
    _ = try await agent.call(["Command": "plugins.remove", "Name": "litter", "Cleanup": true])
    #expect(await eventually(timeout: .seconds(10)) { owned.members().isEmpty }, "left: \(owned.members())")
  }
}
