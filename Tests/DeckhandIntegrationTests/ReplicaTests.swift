import DeckhandCore
import DeckhandServer
import DeckhandTestSupport
import Foundation
import Testing

/// Two `deckhand server` replicas on one PostgreSQL database, with real
/// agents connected to each.
@Suite("Server replicas on PostgreSQL", .serialized)
struct ReplicaTests {
  @Test(
    "two replicas: deployments and jobs cross them; SIGKILL one: its agent moves over, nothing DOWN or restarted, its job ends once, the leader moves"
  )
  func twoReplicas() async throws {
    try await PostgresCluster.with { try await replicas($0) }
  }

  private func replicas(_ cluster: PostgresCluster) async throws {
    let url = try await cluster.databaseURL()
    let first = try TestWorkspace()
    let one = try ServerProcess(root: first.root, port: try FreePort.next(), extra: ["--database-url", url])
    try await one.waitUntilServing()
    let second = try TestWorkspace()
    let two = try ServerProcess(root: second.root, port: try FreePort.next(), extra: ["--database-url", url])
    try await two.waitUntilServing()
    defer {
      one.signal(SIGKILL)
      two.signal(SIGKILL)
    }
    let token = one.operatorToken
    #expect(!token.isEmpty && two.operatorToken.isEmpty, "one bootstrap")
    #expect(one.logText.contains("this replica leads"), "the first replica leads:\n\(one.logText)")
    #expect(!two.logText.contains("this replica leads"))

    let nodeOne = try TestWorkspace()
    let agentOne = try AgentProcess(
      nodeOne, extra: ["--server", one.endpoint, "--join-token", one.workerToken, "--node-name", "on-one"])
    defer { agentOne.signal(SIGKILL) }
    // The other agent joins through the second replica with the first's
    // token: tokens, like everything, are shared.
    let nodeTwo = try TestWorkspace()
    let agentTwo = try AgentProcess(
      nodeTwo, extra: ["--server", two.endpoint, "--join-token", one.workerToken, "--node-name", "on-two"])
    defer { agentTwo.signal(SIGKILL) }
    try await agentOne.waitUntilServing()
    try await agentTwo.waitUntilServing()
    func statuses(_ server: ServerProcess) async -> [String: String] {
      guard let listed = try? await server.cli(["nodes", "ls", "--json"], token: token), listed.status == 0,
        case .array(let nodes) = try? JSONValue.parse(Array(listed.stdout.utf8))
      else { return [:] }
      var result: [String: String] = [:]
      for case .object(let node) in nodes {
        if case .string(let name) = node["name"] {
          result[name] = if case .string(let status) = node["status"] { status } else { "NODE_STATUS_UNKNOWN" }
        }
      }
      return result
    }
    #expect(
      await eventually(timeout: .seconds(20)) {
        let seen = await statuses(two)
        return seen["on-one"] == "NODE_STATUS_READY" && seen["on-two"] == "NODE_STATUS_READY"
      }, "\(one.logText)\n\(two.logText)")

    // Deployed through the first replica, running on both agents.
    let pushed = try await one.cli(
      ["artifacts", "push", try ControlPlaneTests.echoPackage(in: first.root)], token: token)
    #expect(pushed.status == 0, "\(pushed)")
    #expect(try await one.cli(["deploy", "echo@1.0.0"], token: token).status == 0)
    #expect(
      await eventually(timeout: .seconds(30)) {
        let onTwo = pid((try? await agentTwo.plugin("echo")) ?? nil) != nil
        let onOne = pid((try? await agentOne.plugin("echo")) ?? nil) != nil
        return onOne && onTwo
      }, "\(two.logText)")
    let pluginTwo = try #require(pid(try await agentTwo.plugin("echo")))

    // Queued on the first replica for the second's runner: assigned at
    // once (the second replica is told), well before its runner would
    // look again on its own.
    let started = ContinuousClock.now
    let job = try await one.cli(
      ["jobs", "run", "--wait", "--target", "on-two", "--", "sh", "-c", "echo ran on $(hostname) ok"], token: token)
    let took = started.duration(to: .now)
    #expect(job.status == 0 && job.stdout.hasSuffix("ok\n"), "\(job)")
    #expect(took < .seconds(5), "took \(took)")
    // Assignment across replicas does not wait for the runner's own
    // once-a-second look: the queueing replica's NOTIFY wakes it.
    var latencies: [Int64] = []
    for _ in 0..<5 {
      let quick = try await one.cli(["jobs", "run", "--wait", "--target", "on-two", "--", "true"], token: token)
      #expect(quick.status == 0, "\(quick)")
    }
    if case .array(let jobs) = try await two.json(["jobs", "ls"], token: token) {
      func milliseconds(_ value: JSONValue?) -> Int64? {
        switch value {
        case .number(let number): Int64(number)
        case .string(let text): Int64(text)
        default: nil
        }
      }
      for case .object(let fields) in jobs {
        if let queued = milliseconds(fields["queued_ms"]), let assigned = milliseconds(fields["assigned_ms"]) {
          latencies.append(assigned - queued)
        }
      }
    }
    print("replicas: queue to assignment across replicas, ms: \(latencies)")
    #expect(latencies.count == 6 && latencies.allSatisfy { $0 < 400 }, "queue to assignment, ms: \(latencies)")

    // And the other way round, with its output followed through the first.
    let back = try await two.cli(["jobs", "run", "--wait", "--target", "on-one", "--", "echo", "back"], token: token)
    #expect(back.status == 0 && back.stdout == "back\n", "\(back)")

    // Each agent was given one replica; its session names both (after
    // the next refresh of the list, every 5 s).
    try await Task.sleep(for: .seconds(6))  // a replica refresh (5 s) has told every session of both

    // A job runs on the first replica's agent when that replica dies.
    let queued = try await one.cli(
      ["jobs", "run", "--target", "on-one", "--", "sh", "-c", "sleep 4; echo finished once"], token: token)
    let jobId = queued.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(queued.status == 0 && !jobId.isEmpty, "\(queued)")
    try await Task.sleep(for: .seconds(1))

    // The leader dies: the other replica leads within seconds, its agent
    // moves over, no node is marked DOWN, no plugin restarts, the job
    // finishes once.
    let pluginOne = try #require(pid(try await agentOne.plugin("echo")))
    one.signal(SIGKILL)
    let killed = ContinuousClock.now
    #expect(
      await eventually(timeout: .seconds(15)) { two.logText.contains("this replica leads") }, "\(two.logText)")
    var seenDown: Set<String> = []
    // The first agent's runner is on the second replica: a job for it
    // queued there runs.
    let moved = try await two.cli(
      ["jobs", "run", "--wait", "--target", "on-one", "--expires-in", "15s", "--", "echo", "moved"], token: token)
    let movedAfter = killed.duration(to: .now)
    #expect(moved.status == 0 && moved.stdout == "moved\n", "\(moved)\n\(two.logText)")
    #expect(movedAfter < .seconds(15), "moved after \(movedAfter)")
    print("replicas: a job ran on the dead replica's agent through the other \(movedAfter) after the kill")
    for (name, status) in await statuses(two) where status == "NODE_STATUS_DOWN" { seenDown.insert(name) }
    let finished = await eventually(timeout: .seconds(30)) {
      let watched = try? await two.cli(["jobs", "watch", jobId], token: token)
      return watched?.status == 0 && watched?.stdout == "finished once\n"
    }
    #expect(finished, "\(two.logText)")
    for _ in 0..<6 {
      let seen = await statuses(two)
      for (name, status) in seen where status == "NODE_STATUS_DOWN" { seenDown.insert(name) }
      try await Task.sleep(for: .milliseconds(500))
    }
    #expect(seenDown.isEmpty, "wrongly DOWN: \(seenDown)")
    #expect(pid(try await agentOne.plugin("echo")) == pluginOne, "the first agent's plugin was not restarted")
    #expect(pid(try await agentTwo.plugin("echo")) == pluginTwo, "the second agent's plugin was not restarted")
    // The new leader places a deployment made through it.
    let more = try await two.cli(["deploy", "echo@1.0.0", "--config", "{\"a\":1}"], token: token)
    #expect(more.status == 0, "\(more)")
  }
}
