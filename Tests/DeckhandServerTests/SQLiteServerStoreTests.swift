import DeckhandCore
import DeckhandProtocol
import DeckhandServer
import DeckhandTestSupport
import Testing

@Suite("SQLiteServerStore: node removal in one transaction")
struct SQLiteServerStoreTests {
  static func node(_ id: String) -> NodeRecord {
    NodeRecord(
      id: id, name: "name-\(id)", hostname: "", labels: ["k": "v"], platform: "", agentVersion: "", address: "",
      plugins: [:], status: .ready, lastHeartbeatMs: 1, createdMs: 1, credentialHash: "hash-\(id)")
  }

  static func task(_ id: String, node: String, state: TaskState, active: Bool) -> TaskRecord {
    TaskRecord(
      id: id, deploymentId: "d1", nodeId: node, plugin: "echo", version: "1", artifactDigest: "x", artifactSize: 1,
      configJSON: "", state: state, message: "", updatedMs: 1, active: active)
  }

  @Test("removeNode retires the node's active tasks, requeues its runner's jobs, keeps a tombstone; others stay")
  func removeNode() async throws {
    let root = try TestWorkspace()
    let store = try SQLiteServerStore(stateDirectory: root.root + "/server")
    try store.save(Self.node("a"))
    try store.save(Self.node("b"))
    try store.apply(
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

    let removal = try #require(try store.removeNode(id: "a", nowMs: 5_000))
    #expect(removal.node.name == "name-a")
    #expect(removal.retiredTasks.map(\.id) == ["a-run"])
    #expect(removal.releasedJobs.map(\.id) == [claimedByA.id])
    #expect(try store.node(id: "a") == nil)
    #expect(try store.removedNodes() == [RemovedNode(id: "a", name: "name-a", removedMs: 5_000)])
    let tasks = try store.tasks(node: nil, deployment: nil, activeOnly: false)
    #expect(tasks.first { $0.id == "a-run" }.map { ($0.state, $0.active) } ?? (.new, true) == (.removed, false))
    #expect(tasks.first { $0.id == "b-run" }?.state == .running)
    #expect(try queue.record(claimedByA.id).state == .queued)
    #expect(try queue.record(claimedByA.id).runnerId.isEmpty)
    #expect(try queue.record(claimedByB.id).state == .waiting)
    // The removed runner cannot claim again; the other can take the requeued job.
    await #expect(throws: DeckhandError.self) { try await queue.claim(for: "a") }
    #expect(try await queue.claim(for: "b").0.id == claimedByA.id)
    #expect(try store.removeNode(id: "a", nowMs: 6_000) == nil)
  }
}
