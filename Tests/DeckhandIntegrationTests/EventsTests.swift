import DeckhandCore
import DeckhandTestSupport
import Foundation
import Testing

@Suite("Fleet events: deckhand events, past and followed", .serialized)
struct EventsTests {
  /// The kinds `deckhand events --json` lists, with filters.
  func kinds(_ server: ServerProcess, _ filters: [String] = []) async throws -> [String] {
    let result = try await server.cli(["events", "--json"] + filters)
    #expect(result.status == 0, "\(result.stderr)")
    return result.stdout.split(separator: "\n").compactMap { line in
      guard case .object(let event) = try? JSONValue.parse(Array(line.utf8)), case .string(let kind) = event["kind"]
      else { return nil }
      return kind
    }
  }

  @Test("node, job and plugin events are kept and filtered; a follower sees a new one as it happens")
  func events() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let agent = try await AgentProcess.joined(node, to: server, name: "ev-1")
    defer { agent.signal(SIGKILL) }

    #expect(await eventually(timeout: .seconds(10)) { (try? await kinds(server))?.contains("node.ready") == true })
    #expect(try await kinds(server).prefix(2) == ["node.joined", "node.ready"])

    // A follower of this node, started before anything else happens to it.
    let followerLog = "\(root.root)/follow.log"
    _ = FileManager.default.createFile(atPath: followerLog, contents: nil)
    let follower = Process()
    follower.executableURL = URL(fileURLWithPath: Fixtures.deckhand)
    follower.arguments = [
      "events", "--follow", "--node", "ev-1", "--server", server.endpoint, "--token", server.operatorToken,
    ]
    follower.environment = ["XDG_CONFIG_HOME": "\(root.root)/config", "PATH": "/usr/bin:/bin"]
    follower.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: followerLog))
    try follower.run()
    defer { follower.terminate() }
    #expect(
      await eventually(timeout: .seconds(10)) {
        ((try? String(contentsOfFile: followerLog, encoding: .utf8)) ?? "").contains("node.ready")
      })

    #expect(try await server.cli(["nodes", "drain", "ev-1"]).status == 0)
    #expect(
      await eventually(timeout: .seconds(5)) {
        ((try? String(contentsOfFile: followerLog, encoding: .utf8)) ?? "").contains("node.drained")
      }, "the follower did not see the drain")
    #expect(try await server.cli(["nodes", "activate", "ev-1"]).status == 0)

    // A job: queued, assigned, finished.
    #expect(try await server.cli(["jobs", "run", "--wait", "--", "true"]).status == 0)
    #expect(
      await eventually(timeout: .seconds(5)) {
        let all = (try? await kinds(server)) ?? []
        return ["job.queued", "job.assigned", "job.finished"].allSatisfy(all.contains)
      })

    // A plugin killed under the agent: crashed, then restarted, reported
    // with the agent's heartbeats.
    let manifest = try node.manifestFile(["name": "echo", "version": "1.0.0", "entrypoint": Fixtures.echo])
    _ = try await agent.call(["Command": "plugins.install", "Manifest": .string(manifest)])
    guard case .number(let pid)? = try await agent.plugin("echo")?["Pid"] else {
      Issue.record("echo has no pid")
      return
    }
    kill(Int32(pid), SIGKILL)
    let crashed = await eventually(timeout: .seconds(15)) {
      let echo = (try? await kinds(server, ["--plugin", "echo"])) ?? []
      return echo.contains("plugin.crashed") && echo.contains("plugin.restarted")
    }
    let seen = (try? await kinds(server, ["--plugin", "echo"])) ?? []
    #expect(crashed, "\(seen)")
    // Filters: only echo's events, only the node's.
    #expect(try await kinds(server, ["--plugin", "echo"]).allSatisfy { $0.hasPrefix("plugin.") })
    #expect(try await kinds(server, ["--node", "nobody"]).isEmpty)
    let text = try await server.cli(["events", "--plugin", "echo"])
    #expect(text.stdout.contains("plugin.crashed") && text.stdout.contains("node=ev-1 plugin=echo"), "\(text.stdout)")
    let followed = (try? String(contentsOfFile: followerLog, encoding: .utf8)) ?? ""
    #expect(followed.contains("job.assigned") && followed.contains("plugin.crashed"), "\(followed)")
  }
}
