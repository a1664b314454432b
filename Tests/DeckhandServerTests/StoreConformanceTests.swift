import DeckhandCore
import DeckhandProtocol
import DeckhandServer
import DeckhandTestSupport
import Foundation
import Testing

/// One behaviour for both stores: each test runs against SQLite and
/// against a real PostgreSQL.
@Suite("ServerStore conformance: SQLite and PostgreSQL behave alike")
struct StoreConformanceTests {
  static func node(_ id: String, name: String? = nil, availability: NodeAvailability = .active) -> NodeRecord {
    NodeRecord(
      id: id, name: name ?? "name-\(id)", hostname: "host-\(id)", labels: ["k": "v"], platform: "linux/amd64",
      agentVersion: "1.0", address: "10.0.0.1", plugins: ["echo": "1"], status: .ready, lastHeartbeatMs: 1,
      createdMs: 1, credentialHash: "hash-\(id)", agentLabels: ["a": "b"], joinTokenId: "tok",
      availability: availability)
  }

  static func task(_ id: String, node: String, state: TaskState, active: Bool, deployment: String = "d1")
    -> TaskRecord
  {
    TaskRecord(
      id: id, deploymentId: deployment, nodeId: node, plugin: "echo", version: "1", artifactDigest: "x",
      artifactSize: 1, configJSON: "{\"a\":1}", state: state, message: "", updatedMs: 1, active: active)
  }

  static func job(
    _ id: String, queuedMs: Int64, runner: String = "", labels: [String: String] = [:], singleton: String = "",
    expiresMs: Int64 = 0
  ) -> JobRecord {
    JobRecord(
      id: id, spec: Data([1, 2, 3]), singletonId: singleton, targetRunner: runner, targetLabels: labels,
      project: "p", queuedMs: queuedMs, lifecycle: JobLifecycle(expiresMs: expiresMs))
  }

  @Test("tokens round-trip, change in place and list oldest first", arguments: StoreKind.allCases)
  func tokens(kind: StoreKind) async throws {
    try await StoreFixture.with(kind) { store in
      let first = TokenRecord(
        id: "t1", role: .worker, secretHash: "h1", createdMs: 10, expiresMs: 0, revoked: false, description: "one",
        labels: ["zone": "a", "rack": "7"], allowedLabelKeys: ["role"])
      var second = TokenRecord(
        id: "t2", role: .operator, secretHash: "h2", createdMs: 5, expiresMs: 99, revoked: false, description: "")
      try await store.save(first)
      try await store.save(second)
      #expect(try await store.token(id: "t1") == first)
      #expect(try await store.token(id: "missing") == nil)
      second.revoked = true
      try await store.save(second)
      #expect(try await store.token(id: "t2")?.revoked == true)
      #expect(try await store.tokens().map(\.id) == ["t2", "t1"])
    }
  }

  @Test("nodes: saved, found by id and name, unique names, statuses set in batches", arguments: StoreKind.allCases)
  func nodes(kind: StoreKind) async throws {
    try await StoreFixture.with(kind) { store in
      let a = Self.node("a", name: "zeta")
      try await store.save(a)
      try await store.save(Self.node("b", name: "alpha", availability: .drain))
      #expect(try await store.node(id: "a") == a)
      #expect(try await store.node(named: "alpha")?.id == "b")
      #expect(try await store.node(named: "nobody") == nil)
      #expect(try await store.nodes().map(\.name) == ["alpha", "zeta"])
      // Another node may not take a name.
      await #expect(throws: DeckhandError.self) { try await store.save(Self.node("c", name: "zeta")) }
      let error = await #expect(throws: DeckhandError.self) { try await store.save(Self.node("c", name: "zeta")) }
      #expect(error?.code == .alreadyExists)
      #expect(try await store.node(id: "c") == nil)
      // The same node saves over itself.
      var renamed = a
      renamed.labels = ["new": "label"]
      try await store.save(renamed)
      #expect(try await store.node(id: "a")?.labels == ["new": "label"])

      try await store.setNodeStatus([
        NodeLiveness.StatusChange(id: "a", status: .down, lastHeartbeatMs: nil),
        NodeLiveness.StatusChange(id: "b", status: .ready, lastHeartbeatMs: 500),
        NodeLiveness.StatusChange(id: "gone", status: .ready, lastHeartbeatMs: 1),
      ])
      let (nodeA, nodeB) = (try await store.node(id: "a"), try await store.node(id: "b"))
      #expect(nodeA?.status == .down && nodeA?.lastHeartbeatMs == 1)
      #expect(nodeB?.status == .ready && nodeB?.lastHeartbeatMs == 500)
      try await store.setAllNodes(status: .unknown)
      #expect(try await store.nodes().allSatisfy { $0.status == .unknown })
    }
  }

  @Test(
    "removeNode retires the node's active tasks, requeues its runner's jobs, keeps a tombstone; others stay",
    arguments: StoreKind.allCases)
  func removeNode(kind: StoreKind) async throws {
    try await StoreFixture.with(kind) { store in
      try await store.save(Self.node("a"))
      try await store.save(Self.node("b"))
      try await store.apply(
        deployments: [],
        tasks: [
          Self.task("a-run", node: "a", state: .running, active: true),
          Self.task("a-old", node: "a", state: .removed, active: false),
          Self.task("b-run", node: "b", state: .running, active: true),
        ])
      let queue = JobQueue(store: store, timing: JobQueue.Timing())
      var job = Deckhand_Server_V1_Job()
      job.noop = .init()
      job.target.labels = ["k": "v"]
      let first = try await queue.queue(job)
      let second = try await queue.queue(job)
      let (claimedByA, _) = try await queue.claim(for: "a")
      _ = try await queue.ack(claimedByA.id, runner: "a")
      let (claimedByB, _) = try await queue.claim(for: "b")
      #expect(Set([claimedByA.id, claimedByB.id]) == [first, second])

      let removal = try #require(try await store.removeNode(id: "a", nowMs: 5_000))
      #expect(removal.node.name == "name-a")
      #expect(removal.retiredTasks.map(\.id) == ["a-run"])
      #expect(removal.releasedJobs.map(\.id) == [claimedByA.id])
      #expect(try await store.node(id: "a") == nil)
      #expect(try await store.removedNodes() == [RemovedNode(id: "a", name: "name-a", removedMs: 5_000)])
      let tasks = try await store.tasks(node: nil, deployment: nil, activeOnly: false)
      #expect(tasks.first { $0.id == "a-run" }.map { ($0.state, $0.active) } ?? (.new, true) == (.removed, false))
      #expect(tasks.first { $0.id == "b-run" }?.state == .running)
      let (releasedA, stillB) = (try await queue.record(claimedByA.id), try await queue.record(claimedByB.id))
      #expect(releasedA.state == .queued && releasedA.runnerId.isEmpty)
      #expect(stillB.state == .waiting)
      // The removed runner cannot claim again; the other can take the requeued job.
      await #expect(throws: DeckhandError.self) { try await queue.claim(for: "a") }
      let retaken = try await queue.claim(for: "b").0.id
      #expect(retaken == claimedByA.id)
      #expect(try await store.removeNode(id: "a", nowMs: 6_000) == nil)
    }
  }

  @Test("artifacts: by digest, the newest of a name and version, listed by name", arguments: StoreKind.allCases)
  func artifacts(kind: StoreKind) async throws {
    try await StoreFixture.with(kind) { store in
      let old = ArtifactRecord(digest: "d1", name: "echo", version: "1", platform: "linux", size: 10, createdMs: 1)
      let new = ArtifactRecord(digest: "d2", name: "echo", version: "1", platform: "linux", size: 20, createdMs: 2)
      let other = ArtifactRecord(digest: "d3", name: "alpha", version: "2", platform: "", size: 1, createdMs: 3)
      for artifact in [old, new, other] { try await store.save(artifact) }
      #expect(try await store.artifact(digest: "d1") == old)
      #expect(try await store.artifact(name: "echo", version: "1") == new)
      #expect(try await store.artifact(name: "echo", version: "9") == nil)
      #expect(try await store.artifacts().map(\.digest) == ["d3", "d1", "d2"])
    }
  }

  @Test(
    "deployments and tasks: saved together, filtered; only the reporting node's active tasks change",
    arguments: StoreKind.allCases)
  func deploymentsAndTasks(kind: StoreKind) async throws {
    try await StoreFixture.with(kind) { store in
      let trace = ["traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "a=b"]
      let paused = DeploymentRecord(
        id: "d1", plugin: "echo", version: "1", artifactDigest: "x", artifactSize: 1, selector: ["k": "v"],
        configJSON: "{}", maxFailures: 2, state: .paused(reason: "2 tasks failed"), createdMs: 1,
        traceContext: trace)
      let rolling = DeploymentRecord(
        id: "d2", plugin: "echo", version: "2", artifactDigest: "y", artifactSize: 2, selector: [:],
        configJSON: "", maxFailures: 0, state: .rolling, createdMs: 2)
      var traced = Self.task("t1", node: "a", state: .new, active: true)
      traced.traceContext = trace
      try await store.apply(
        deployments: [paused, rolling],
        tasks: [
          traced,
          Self.task("t2", node: "b", state: .running, active: true, deployment: "d2"),
          Self.task("t3", node: "a", state: .removed, active: false, deployment: "d2"),
        ])
      #expect(try await store.deployment(id: "d1") == paused)
      #expect(try await store.deployments().map(\.id) == ["d1", "d2"])
      var replaced = rolling
      replaced.state = .replaced
      try await store.save(replaced)
      #expect(try await store.deployment(id: "d2")?.state == .replaced)
      let forA = try await store.tasks(node: "a", deployment: nil, activeOnly: false).map(\.id)
      #expect(Set(forA) == ["t1", "t3"])
      #expect(try await store.tasks(node: "a", deployment: nil, activeOnly: true).map(\.id) == ["t1"])
      #expect(Set(try await store.tasks(node: nil, deployment: "d2", activeOnly: false).map(\.id)) == ["t2", "t3"])

      let changed = try await store.updateTasks([
        TaskUpdate(id: "t1", nodeId: "a", state: .running, message: "up"),
        TaskUpdate(id: "t2", nodeId: "a", state: .failed, message: "not a's task"),
        TaskUpdate(id: "t3", nodeId: "a", state: .running, message: "inactive"),
        TaskUpdate(id: "missing", nodeId: "a", state: .running, message: ""),
      ])
      #expect(changed.map(\.id) == ["t1"])
      #expect(changed.first?.state == .running && changed.first?.message == "up")
      let (t1, t2) = (
        try await store.tasks(node: "a", deployment: "d1", activeOnly: true).first,
        try await store.tasks(node: "b", deployment: nil, activeOnly: true).first
      )
      #expect(t1?.state == .running && t1?.configJSON == "{\"a\":1}")
      // The trace that made the deployment, kept with it and its task.
      #expect(t1?.traceContext == trace)
      #expect(try await store.deployment(id: "d2")?.traceContext == [:])
      #expect(t2?.state == .running)
      // The same report again changes nothing.
      let again = try await store.updateTasks([TaskUpdate(id: "t1", nodeId: "a", state: .running, message: "up")])
      #expect(again.isEmpty)
      // The server's NEW → ASSIGNED after sending does not undo the
      // agent's RUNNING that came first.
      let late = try await store.updateTasks([
        TaskUpdate(id: "t1", nodeId: "a", state: .assigned, message: "sent to the node", onlyFrom: .new)
      ])
      #expect(late.isEmpty)
      let stillRunning = try await store.tasks(node: "a", deployment: "d1", activeOnly: true).first?.state
      #expect(stillRunning == .running)
    }
  }

  @Test("concurrent job changes all commit; a change that fails rolls back alone", arguments: StoreKind.allCases)
  func concurrentChanges(kind: StoreKind) async throws {
    try await StoreFixture.with(kind) { store in
      let queue = JobQueue(store: store, timing: JobQueue.Timing())
      var job = Deckhand_Server_V1_Job()
      job.noop = .init()
      job.target.labels = ["k": "v"]
      let template = job
      let ids = try await withThrowingTaskGroup(of: String.self) { group in
        for _ in 0..<200 { group.addTask { try await queue.queue(template) } }
        return try await group.reduce(into: [String]()) { $0.append($1) }
      }
      struct Refused: Error {}
      // Changes in flight together: every third one throws halfway.
      let outcomes = await withTaskGroup(of: (String, Bool).self) { group in
        for (index, id) in ids.enumerated() {
          group.addTask {
            do {
              _ = try await store.update(id) { record in
                record.error = "changed"
                if index % 3 == 0 { throw Refused() }
              }
              return (id, true)
            } catch {
              return (id, false)
            }
          }
        }
        return await group.reduce(into: [String: Bool]()) { $0[$1.0] = $1.1 }
      }
      #expect(outcomes.values.filter { !$0 }.count == 67)
      let stored = try await store.jobs(states: [], runner: nil, since: 0, limit: 1000)
      #expect(stored.count == 200)
      #expect(stored.allSatisfy { $0.targetLabels == ["k": "v"] && $0.results.isEmpty }, "JSON columns round-trip")
      for record in stored {
        #expect(record.error == (outcomes[record.id] == true ? "changed" : ""), "job \(record.id)")
      }
    }
  }

  @Test(
    "jobs: a singleton replaces its queued twin; listings filter by state, runner and time, newest first",
    arguments: StoreKind.allCases)
  func jobsAndSingletons(kind: StoreKind) async throws {
    try await StoreFixture.with(kind) { store in
      #expect(try await store.insert(Self.job("j1", queuedMs: 10, singleton: "s")) == [])
      #expect(try await store.insert(Self.job("j2", queuedMs: 20, singleton: "s")) == ["j1"])
      #expect(try await store.insert(Self.job("j3", queuedMs: 30)) == [])
      let replaced = try await store.job(id: "j1")
      #expect(replaced?.state == .error && replaced?.error.contains("j2") == true, "\(String(describing: replaced))")
      #expect(try await store.job(id: "j2")?.spec == Data([1, 2, 3]))
      #expect(try await store.jobs(states: [], runner: nil, since: 0, limit: 0).map(\.id) == ["j3", "j2", "j1"])
      let queued = JobState.queued.rawValue
      #expect(try await store.jobs(states: [queued], runner: nil, since: 0, limit: 0).map(\.id) == ["j3", "j2"])
      #expect(try await store.jobs(states: [], runner: nil, since: 15, limit: 1).map(\.id) == ["j3"])
      #expect(try await store.jobs(states: [], runner: "r", since: 0, limit: 0).isEmpty)
    }
  }

  @Test(
    "fleet events: numbered in order, filtered, newest N oldest first, pruned by age", arguments: StoreKind.allCases)
  func fleetEvents(kind: StoreKind) async throws {
    try await StoreFixture.with(kind) { store in
      try await store.append(events: [
        FleetEvent(atMs: 10, kind: .nodeJoined, nodeId: "n1", nodeName: "web-1"),
        FleetEvent(atMs: 20, kind: .pluginCrashed, nodeId: "n1", nodeName: "web-1", plugin: "echo", message: "x"),
        FleetEvent(atMs: 30, kind: .jobQueued, subject: "j1", message: "exec true"),
      ])
      try await store.append(events: [FleetEvent(atMs: 40, kind: .nodeDown, nodeId: "n2", nodeName: "web-2")])
      let all = try await store.events(after: 0, sinceMs: 0, node: nil, plugin: nil, limit: 100)
      #expect(all.map(\.kind) == [.nodeJoined, .pluginCrashed, .jobQueued, .nodeDown])
      #expect(all.map(\.sequence) == all.map(\.sequence).sorted() && Set(all.map(\.sequence)).count == 4)
      #expect(all[1].plugin == "echo" && all[1].message == "x" && all[1].nodeName == "web-1")
      let last = try #require(all.last?.sequence)
      #expect(try await store.events(after: all[1].sequence, sinceMs: 0, node: nil, plugin: nil, limit: 100).count == 2)
      #expect(try await store.events(after: 0, sinceMs: 0, node: "web-1", plugin: nil, limit: 100).count == 2)
      #expect(try await store.events(after: 0, sinceMs: 0, node: "n2", plugin: nil, limit: 100).count == 1)
      #expect(try await store.events(after: 0, sinceMs: 0, node: nil, plugin: "echo", limit: 100).count == 1)
      #expect(try await store.events(after: 0, sinceMs: 25, node: nil, plugin: nil, limit: 100).count == 2)
      #expect(
        try await store.events(after: 0, sinceMs: 0, node: nil, plugin: nil, limit: 2).map(\.kind) == [
          .jobQueued, .nodeDown,
        ])
      #expect(try await store.pruneEvents(before: 25) == 2)
      #expect(
        try await store.events(after: 0, sinceMs: 0, node: nil, plugin: nil, limit: 100).map(\.sequence).last == last)
    }
  }

  @Test("plugin usage: replaced per node, unknown nodes ignored, gone with its node", arguments: StoreKind.allCases)
  func pluginUsage(kind: StoreKind) async throws {
    try await StoreFixture.with(kind) { store in
      try await store.save(Self.node("n1"))
      #expect(try await store.pluginUsage(node: "n1") == nil)
      let first = [PluginUsage(plugin: "echo", cpuSeconds: 1.5, residentBytes: 4096)]
      try await store.setPluginUsage(["n1": first, "ghost": first], reportedMs: 10)
      #expect(try await store.pluginUsage(node: "n1")?.usage == first)
      #expect(try await store.pluginUsage(node: "n1")?.reportedMs == 10)
      #expect(try await store.pluginUsage(node: "ghost") == nil, "no usage for a node that is not stored")
      try await store.setPluginUsage(["n1": []], reportedMs: 20)
      #expect(try await store.pluginUsage(node: "n1")?.usage == [])
      try await store.setPluginUsage(["n1": first], reportedMs: 30)
      _ = try await store.removeNode(id: "n1", nowMs: 40)
      #expect(try await store.pluginUsage(node: "n1") == nil)
    }
  }

  @Test("jobs are counted by state, for the metrics", arguments: StoreKind.allCases)
  func jobCounts(kind: StoreKind) async throws {
    try await StoreFixture.with(kind) { store in
      #expect(try await store.jobCounts() == [:])
      try await store.save(Self.node("r1"))
      for index in 0..<3 { _ = try await store.insert(Self.job("j\(index)", queuedMs: Int64(index))) }
      _ = try await store.claim(runner: "r1", byIdOnly: false, now: 10)
      _ = try await store.update("j2") { $0.lifecycle.cancel(force: true, nowMs: 11) }
      #expect(
        try await store.jobCounts() == [
          JobState.queued.rawValue: 1, JobState.waiting.rawValue: 1, JobState.error.rawValue: 1,
        ])
    }
  }

  @Test(
    "claims take the oldest job the runner accepts, never one another claim took; drained runners take none",
    arguments: StoreKind.allCases)
  func claims(kind: StoreKind) async throws {
    try await StoreFixture.with(kind) { store in
      try await store.save(Self.node("r1"))
      try await store.save(Self.node("r2", availability: .drain))
      _ = try await store.insert(Self.job("for-other-labels", queuedMs: 1, labels: ["k": "other"]))
      _ = try await store.insert(Self.job("for-r1", queuedMs: 2, runner: "r1"))
      _ = try await store.insert(Self.job("any", queuedMs: 3))
      _ = try await store.insert(Self.job("for-r2", queuedMs: 4, runner: "r2"))
      let first = try #require(try await store.claim(runner: "r1", byIdOnly: false, now: 100))
      #expect(first.job?.id == "for-r1" && first.job?.state == .waiting && first.job?.assignedMs == 100)
      #expect(first.next == RunnerWaiters.Target(runner: "", labels: [:]), "the next one it could take")
      #expect(first.runner.labels == ["k": "v"])
      let byId = try #require(try await store.claim(runner: "r1", byIdOnly: true, now: 101))
      #expect(byId.job == nil, "only jobs aimed at it")
      let second = try await store.claim(runner: "r1", byIdOnly: false, now: 102)
      #expect(second?.job?.id == "any" && second?.next == nil)
      #expect(try await store.claim(runner: "r2", byIdOnly: false, now: 103) == nil, "drained")
      #expect(try await store.claim(runner: "nobody", byIdOnly: false, now: 103) == nil)
      #expect(try await store.runnerIdentity(id: "r2", byIdOnly: false) == nil)
      #expect(try await store.runnerIdentity(id: "r1", byIdOnly: true)?.byIdOnly == true)

      // Many runners at once: every job is taken exactly once.
      for index in 0..<60 { _ = try await store.insert(Self.job("bulk-\(index)", queuedMs: 1000 + Int64(index))) }
      let taken = try await withThrowingTaskGroup(of: [String].self) { group in
        for _ in 0..<8 {
          group.addTask {
            var mine: [String] = []
            while let claim = try await store.claim(runner: "r1", byIdOnly: false, now: 2000), let job = claim.job {
              mine.append(job.id)
            }
            return mine
          }
        }
        return try await group.reduce(into: [String]()) { $0 += $1 }
      }
      #expect(taken.count == 60 && Set(taken).count == 60, "\(taken.count) claims of \(Set(taken).count) jobs")
    }
  }

  @Test(
    "output past the per-job limit is cut where it crosses it, a note says so, and later output is dropped",
    arguments: StoreKind.allCases)
  func outputLimit(kind: StoreKind) async throws {
    try await StoreFixture.with(kind) { store in
      _ = try await store.insert(Self.job("j", queuedMs: 1))
      let chunk = Data(repeating: UInt8(ascii: "x"), count: 600)
      func event(_ kind: Int, _ time: Int64) -> JobOutputEvent {
        JobOutputEvent(kind: kind, data: chunk, timestampMs: time)
      }
      #expect(try await store.appendOutput("j", [event(1, 1)], limit: 1000) == 1)
      let last = try await store.appendOutput("j", [event(1, 2), event(2, 3)], limit: 1000)
      let after = try await store.appendOutput("j", [event(1, 4)], limit: 1000)
      #expect(after == last, "nothing is stored past the limit")
      let stored = try await store.output("j", after: 0, limit: 100)
      #expect(stored.map(\.data.count).prefix(2) == [600, 400])
      #expect(stored.map(\.sequence) == [1, 2, 3])
      #expect(stored.count == 3)
      let note = String(decoding: stored.last?.data ?? Data(), as: UTF8.self)
      #expect(note.contains("output cut") && note.contains("1000 bytes"), "\(note)")
      #expect(stored.last?.kind == Deckhand_Server_V1_OutputEvent.Kind.stderr.rawValue)
      #expect(try await store.output("j", after: 1, limit: 1).map(\.sequence) == [2])
      #expect(try await store.appendOutput("missing", [event(1, 1)], limit: 1000) == 0)

      // Output that fills the limit exactly: the next event is cut, with the note.
      _ = try await store.insert(Self.job("exact", queuedMs: 2))
      _ = try await store.appendOutput("exact", [event(1, 1)], limit: 600)
      _ = try await store.appendOutput("exact", [event(1, 2)], limit: 600)
      _ = try await store.appendOutput("exact", [event(1, 3)], limit: 600)
      let filled = try await store.output("exact", after: 0, limit: 100)
      #expect(filled.count == 2 && filled[0].data.count == 600, "\(filled.map(\.data.count))")
      let filledNote = String(decoding: filled.last?.data ?? Data(), as: UTF8.self)
      #expect(filledNote.contains("output cut"))
    }
  }

  @Test(
    "timeouts: expired and silent jobs end, unacknowledged ones queue again; restarted heartbeats spare them",
    arguments: StoreKind.allCases)
  func timeouts(kind: StoreKind) async throws {
    try await StoreFixture.with(kind) { store in
      try await store.save(Self.node("r"))
      _ = try await store.insert(Self.job("expiring", queuedMs: 1, expiresMs: 500))
      _ = try await store.insert(Self.job("unacked", queuedMs: 2, runner: "r"))
      _ = try await store.insert(Self.job("silent", queuedMs: 3, runner: "r"))
      _ = try await store.insert(Self.job("fresh", queuedMs: 4))
      _ = try await store.claim(runner: "r", byIdOnly: true, now: 100)  // unacked: WAITING since 100
      _ = try await store.claim(runner: "r", byIdOnly: true, now: 100)
      _ = try await store.update("silent") { try $0.lifecycle.acknowledge(by: "r", nowMs: 100) }
      // Heartbeats restart at 900: nothing silent yet at 1000.
      try await store.restartHeartbeats(nowMs: 900)
      let early = try await store.expire(now: 1000, ackTimeoutMs: 2000, heartbeatTimeoutMs: 500)
      #expect(early.map(\.id) == ["expiring"])
      let late = try await store.expire(now: 3000, ackTimeoutMs: 2000, heartbeatTimeoutMs: 500)
      #expect(Set(late.map(\.id)) == ["unacked", "silent"], "\(late.map(\.id))")
      let (unacked, silent) = (try await store.job(id: "unacked"), try await store.job(id: "silent"))
      #expect(unacked?.state == .queued && unacked?.runnerId == "", "an unacknowledged job is queued again")
      #expect(silent?.state == .error && silent?.error.isEmpty == false)
      #expect(try await store.job(id: "fresh")?.state == .queued)
      #expect(try await store.expire(now: 3000, ackTimeoutMs: 2000, heartbeatTimeoutMs: 500).isEmpty)

      let retaken = try await store.claim(runner: "r", byIdOnly: true, now: 4000)
      #expect(retaken?.job?.id == "unacked")
      _ = try await store.update("unacked") { try $0.lifecycle.acknowledge(by: "r", nowMs: 4000) }
      #expect(try await store.stop("unacked", error: "disk full", nowMs: 4001))
      #expect(try await store.job(id: "unacked")?.error.contains("disk full") == true)
      #expect(try await store.stop("unacked", error: "again", nowMs: 4002) == false)
      #expect(try await store.stop("missing", error: "x", nowMs: 4002) == false)
    }
  }

  @Test(
    "jobs that ended before the retention are deleted with their output; others stay", arguments: StoreKind.allCases)
  func retention(kind: StoreKind) async throws {
    try await StoreFixture.with(kind) { store in
      var timing = JobQueue.Timing()
      timing.retention = .milliseconds(300)
      let queue = JobQueue(store: store, timing: timing)
      var job = Deckhand_Server_V1_Job()
      job.noop = .init()
      let ended = try await queue.queue(job)
      let waiting = try await queue.queue(job)
      try await queue.cancel(ended, force: true)
      _ = try await store.appendOutput(
        ended, [JobOutputEvent(kind: 1, data: Data("out".utf8), timestampMs: 1)], limit: 1 << 20)
      try await Task.sleep(for: .milliseconds(400))
      try await queue.sweep()
      #expect(try await store.job(id: ended) == nil)
      #expect(try await store.output(ended, after: 0, limit: 10).isEmpty)
      #expect(try await store.job(id: waiting)?.state == .queued)
    }
  }

  @Test("config variables: set, replaced, deleted by an empty value, read by prefix", arguments: StoreKind.allCases)
  func config(kind: StoreKind) async throws {
    try await StoreFixture.with(kind) { store in
      try await store.setConfig([
        ConfigRecord(scope: 0, target: "", name: "app_port", value: "80"),
        ConfigRecord(scope: 3, target: "r1", name: "app_host", value: "h"),
        ConfigRecord(scope: 0, target: "", name: "other", value: "x"),
      ])
      try await store.setConfig([ConfigRecord(scope: 0, target: "", name: "app_port", value: "8080")])
      let app = try await store.config(prefix: "app_")
      #expect(app.map(\.name) == ["app_port", "app_host"])
      #expect(app.first?.value == "8080")
      try await store.setConfig([ConfigRecord(scope: 0, target: "", name: "other", value: "")])
      #expect(try await store.config(prefix: "").map(\.name) == ["app_port", "app_host"])
      #expect(try await store.config(prefix: "100%").isEmpty)
    }
  }
}
