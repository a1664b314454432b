import DeckhandClient
import DeckhandCore
import DeckhandTestSupport
import Foundation
import Testing

/// Rollouts after SwarmKit's update config, on real agents.
@Suite("Rollouts: parallelism, delay, monitor, failure action", .serialized)
struct RolloutTests {
  /// A package of echo `version` whose binary exits at once.
  static func brokenPackage(in root: String, version: String) throws -> String {
    let folder = "\(root)/pkg-broken-\(version)"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    try Data("#!/bin/sh\necho broken on purpose >&2\nexit 3\n".utf8).write(to: URL(fileURLWithPath: "\(folder)/echo"))
    chmod("\(folder)/echo", 0o755)
    try Data(#"{"name": "echo", "version": "\#(version)", "entrypoint": "echo"}"#.utf8)
      .write(to: URL(fileURLWithPath: "\(folder)/plugin.json"))
    let package = "\(root)/echo-broken-\(version).tar.gz"
    try ArtifactPackage.pack(folder, into: package)
    return package
  }

  @Test(
    "--parallelism 2 upgrades four nodes two at a time; a broken version with --failure-action rollback returns every node to the previous one"
  )
  func parallelismAndRollback() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let w0 = try TestWorkspace()
    let w1 = try TestWorkspace()
    let w2 = try TestWorkspace()
    let w3 = try TestWorkspace()
    func agent(_ workspace: borrowing TestWorkspace, _ index: Int) throws -> AgentProcess {
      try AgentProcess(
        workspace,
        extra: ["--server", server.endpoint, "--join-token", server.workerToken, "--node-name", "node-\(index)"])
    }
    let agents = [try agent(w0, 0), try agent(w1, 1), try agent(w2, 2), try agent(w3, 3)]
    defer { for agent in agents { agent.signal(SIGKILL) } }
    for agent in agents { try await agent.waitUntilServing() }
    for version in ["1.0.0", "2.0.0"] {
      let pushed = try await server.cli(
        ["artifacts", "push", try ControlPlaneTests.echoPackage(in: root.root, version: version)])
      #expect(pushed.status == 0, "\(pushed)")
    }
    #expect(
      try await server.cli(["artifacts", "push", try Self.brokenPackage(in: root.root, version: "3.0.0")]).status == 0)

    func versions() async -> [String] {
      ((try? await ControlPlaneTests.tasks(server)) ?? []).filter { $0.state == "TASK_STATE_RUNNING" }.map(\.version)
    }
    #expect(try await server.cli(["deploy", "echo@1.0.0"]).status == 0)
    #expect(await eventually(timeout: .seconds(30)) { await versions() == Array(repeating: "1.0.0", count: 4) })

    // Two at a time: at most two nodes are between versions at any moment.
    let upgrade = try await server.cli(["deploy", "echo@2.0.0", "--parallelism", "2", "--json"])
    #expect(upgrade.status == 0, "\(upgrade)")
    #expect(upgrade.stdout.contains("\"parallelism\":2"), "\(upgrade.stdout)")
    var mostInFlight = 0
    let upgraded = await eventually(timeout: .seconds(60)) {
      let tasks = (try? await ControlPlaneTests.tasks(server)) ?? []
      let inFlight = tasks.filter { $0.version == "2.0.0" && $0.state != "TASK_STATE_RUNNING" }.count
      mostInFlight = max(mostInFlight, inFlight)
      return tasks.count == 4 && tasks.allSatisfy { $0.version == "2.0.0" && $0.state == "TASK_STATE_RUNNING" }
    }
    #expect(upgraded, "\(server.logText)")
    #expect(mostInFlight <= 2, "\(mostInFlight) replacements in flight at once")
    for agent in agents {
      #expect(
        await eventually(timeout: .seconds(10)) { (try? await agent.plugin("echo"))?["Version"] == .string("2.0.0") })
    }

    // 3.0.0 never starts: the rollout is rolled back, and every node runs
    // 2.0.0 again.
    let broken = try await server.cli([
      "deploy", "echo@3.0.0", "--parallelism", "2", "--failure-action", "rollback", "--max-failures", "0",
    ])
    #expect(broken.status == 0, "\(broken)")
    func states() async -> [String: String] {
      guard case .array(let deployments) = try? await server.json(["deployments", "ls"]) else { return [:] }
      var result: [String: String] = [:]
      for case .object(let fields) in deployments {
        if case .string(let version) = fields["version"], case .string(let state) = fields["state"] {
          result[version] = state
        }
      }
      return result
    }
    let rolledBack = await eventually(timeout: .seconds(60)) {
      let seen = await states()
      return seen["3.0.0"]?.hasPrefix("rolled back") == true && seen["2.0.0"] == "complete"
    }
    let seen = await states()
    let taskList = try await server.cli(["tasks", "ls"])
    #expect(rolledBack, "\(seen)\n\(taskList.stdout)")
    #expect(await states()["3.0.0"]?.contains("back to 2.0.0") == true)
    #expect(await eventually(timeout: .seconds(30)) { await versions() == Array(repeating: "2.0.0", count: 4) })
    for agent in agents {
      #expect(
        await eventually(timeout: .seconds(10)) { (try? await agent.plugin("echo"))?["Version"] == .string("2.0.0") })
    }
    server.signal(SIGTERM)
  }
}
