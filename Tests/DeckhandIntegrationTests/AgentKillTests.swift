import DeckhandAgent
import DeckhandCore
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
