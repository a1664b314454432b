import DeckhandCore
import Synchronization
import Testing

@Suite("RolloutPlanner: deployments and nodes to tasks")
struct RolloutPlannerTests {
  /// A planner whose task ids are t1, t2, …
  static func planner() -> RolloutPlanner {
    let counter = Mutex(0)
    return RolloutPlanner {
      counter.withLock {
        $0 += 1
        return "t\($0)"
      }
    }
  }

  static func node(_ id: String, _ labels: [String: String] = [:]) -> NodeRecord {
    NodeRecord(
      id: id, name: id, hostname: id, labels: labels, platform: "linux/x86_64", agentVersion: "1", address: "",
      plugins: [:], status: .ready, lastHeartbeatMs: 1, createdMs: 1, credentialHash: "")
  }

  static func deployment(
    _ id: String, version: String = "1.0.0", selector: [String: String] = [:], maxFailures: Int = 0,
    state: DeploymentState = .rolling
  ) -> DeploymentRecord {
    DeploymentRecord(
      id: id, plugin: "echo", version: version, artifactDigest: "d-\(version)", artifactSize: 10, selector: selector,
      configJSON: "", maxFailures: maxFailures, state: state, createdMs: 1)
  }

  static func task(_ id: String, on node: String, of deployment: DeploymentRecord, _ state: TaskState) -> TaskRecord {
    TaskRecord(
      id: id, deploymentId: deployment.id, nodeId: node, plugin: deployment.plugin, version: deployment.version,
      artifactDigest: deployment.artifactDigest, artifactSize: deployment.artifactSize, configJSON: "", state: state,
      message: "", updatedMs: 1, active: true)
  }

  @Test("a new deployment gets one NEW task on every matching node, and wakes only those")
  func placesOnMatchingNodes() {
    let deployment = Self.deployment("d1", selector: ["role": "web"])
    let nodes = [Self.node("a", ["role": "web"]), Self.node("b", ["role": "db"]), Self.node("c", ["role": "web"])]
    let plan = Self.planner().plan(deployments: [deployment], nodes: nodes, active: [], nowMs: 42)
    #expect(plan.tasks.map(\.nodeId).sorted() == ["a", "c"])
    #expect(plan.tasks.allSatisfy { $0.state == .new && $0.active && $0.deploymentId == "d1" && $0.updatedMs == 42 })
    #expect(plan.wake == ["a", "c"])
    // The deployment stays rolling (it was rolling): nothing to write.
    #expect(plan.deployments.isEmpty)
  }

  @Test("a new task carries its deployment's trace context; it is not part of what the task asks for")
  func traceContext() {
    var deployment = Self.deployment("d1")
    deployment.traceContext = ["traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]
    let plan = Self.planner().plan(deployments: [deployment], nodes: [Self.node("a")], active: [], nowMs: 42)
    #expect(plan.tasks.map(\.traceContext) == [deployment.traceContext])
    var other = plan.tasks[0]
    other.traceContext = [:]
    #expect(other.sameSpec(as: plan.tasks[0]))
  }

  @Test("a drained node gets no new task and no replacement, keeps what it runs, and does not hold the rollout back")
  func drainedNodes() {
    var drained = Self.node("b", ["role": "web"])
    drained.availability = .drain
    let fresh = Self.planner().plan(
      deployments: [Self.deployment("d1", selector: ["role": "web"])],
      nodes: [Self.node("a", ["role": "web"]), drained],
      active: [], nowMs: 1)
    #expect(fresh.tasks.map(\.nodeId) == ["a"])

    let old = Self.deployment("d1", selector: ["role": "web"], state: .replaced)
    let new = Self.deployment("d2", version: "2.0.0", selector: ["role": "web"])
    let active = [Self.task("t1", on: "a", of: new, .running), Self.task("t2", on: "b", of: old, .running)]
    let plan = Self.planner().plan(
      deployments: [new], nodes: [Self.node("a", ["role": "web"]), drained], active: active, nowMs: 2)
    #expect(plan.tasks.isEmpty, "b keeps 1.0.0 while drained: \(plan.tasks)")
    #expect(plan.deployments.map(\.state) == [.complete])
  }

  @Test("a node that no longer matches loses its task (REMOVED, inactive, with the reason)")
  func retiresUnmatchedNodes() {
    let deployment = Self.deployment("d1", selector: ["role": "web"])
    let active = [Self.task("t0", on: "a", of: deployment, .running)]
    let plan = Self.planner().plan(
      deployments: [deployment], nodes: [Self.node("a", ["role": "db"])], active: active, nowMs: 5)
    #expect(plan.tasks.count == 1)
    let retired = plan.tasks[0]
    #expect(retired.id == "t0" && retired.state == .removed && !retired.active)
    #expect(retired.message == "its node no longer matches the selector")
    #expect(plan.wake == ["a"])
  }

  @Test("every node running the version completes the deployment; a second pass writes nothing")
  func completes() {
    let deployment = Self.deployment("d1")
    let active = [Self.task("t0", on: "a", of: deployment, .running)]
    let plan = Self.planner().plan(deployments: [deployment], nodes: [Self.node("a")], active: active, nowMs: 5)
    #expect(plan.tasks.isEmpty)
    #expect(plan.deployments.map(\.state) == [.complete])
    let again = Self.planner().plan(deployments: plan.deployments, nodes: [Self.node("a")], active: active, nowMs: 6)
    #expect(again.isEmpty)
  }

  @Test(
    "a task in progress keeps the deployment rolling",
    arguments: [TaskState.new, .assigned, .accepted, .preparing, .starting])
  func inProgressKeepsRolling(state: TaskState) {
    let deployment = Self.deployment("d1", state: .complete)
    let active = [Self.task("t0", on: "a", of: deployment, state)]
    let plan = Self.planner().plan(deployments: [deployment], nodes: [Self.node("a")], active: active, nowMs: 5)
    #expect(plan.deployments.map(\.state) == [.rolling])
  }

  @Test("a new version replaces old tasks one node at a time, each after the previous settled")
  func replacesOneAtATime() {
    let old = Self.deployment("d1", version: "1.0.0", state: .replaced)
    let new = Self.deployment("d2", version: "2.0.0")
    let nodes = [Self.node("a"), Self.node("b"), Self.node("c")]
    var active = nodes.map { Self.task("old-\($0.id)", on: $0.id, of: old, .running) }

    // First pass: exactly one node is replaced.
    let first = Self.planner().plan(deployments: [old, new], nodes: nodes, active: active, nowMs: 5)
    let retired = first.tasks.filter { !$0.active }
    let created = first.tasks.filter { $0.active }
    #expect(retired.count == 1 && created.count == 1)
    #expect(retired[0].message == "replaced by echo@2.0.0")
    #expect(created[0].nodeId == retired[0].nodeId && created[0].deploymentId == "d2")

    // While the new task starts, nothing else is replaced.
    active.removeAll { $0.id == retired[0].id }
    active.append(Self.task(created[0].id, on: created[0].nodeId, of: new, .starting))
    let waiting = Self.planner().plan(deployments: [old, new], nodes: nodes, active: active, nowMs: 6)
    #expect(waiting.tasks.isEmpty)

    // Once it runs, the next node is replaced.
    active[active.count - 1].state = .running
    let second = Self.planner().plan(deployments: [old, new], nodes: nodes, active: active, nowMs: 7)
    #expect(second.tasks.filter { !$0.active }.count == 1)
    #expect(second.tasks.filter { !$0.active }.first?.nodeId != created[0].nodeId)
  }

  @Test("more failures than maxFailures pause the rollout, and a paused rollout replaces nothing")
  func pausesOnFailures() {
    let old = Self.deployment("d1", version: "1.0.0", state: .replaced)
    let new = Self.deployment("d2", version: "2.0.0", maxFailures: 0)
    let nodes = [Self.node("a"), Self.node("b")]
    let active = [
      Self.task("new-a", on: "a", of: new, .failed), Self.task("old-b", on: "b", of: old, .running),
    ]
    let plan = Self.planner().plan(deployments: [old, new], nodes: nodes, active: active, nowMs: 5)
    #expect(plan.tasks.isEmpty)
    #expect(plan.deployments.map(\.state) == [.paused(reason: "1 task(s) of 2.0.0 failed (max 0)")])
  }

  @Test("failures up to maxFailures do not pause")
  func toleratesFailures() {
    let new = Self.deployment("d2", version: "2.0.0", maxFailures: 1)
    let active = [Self.task("new-a", on: "a", of: new, .failed)]
    let plan = Self.planner().plan(deployments: [new], nodes: [Self.node("a")], active: active, nowMs: 5)
    #expect(plan.deployments.map(\.state) == [.complete])
  }

  @Test("replaced deployments are never planned")
  func ignoresReplaced() {
    let old = Self.deployment("d1", state: .replaced)
    let plan = Self.planner().plan(deployments: [old], nodes: [Self.node("a")], active: [], nowMs: 5)
    #expect(plan.isEmpty && plan.wake.isEmpty)
  }

  /// A rollout of `new` over `old` on `count` nodes all running `old`.
  static func rollout(count: Int, _ new: DeploymentRecord) -> (DeploymentRecord, [NodeRecord], [TaskRecord]) {
    let old = Self.deployment("d1", version: "1.0.0", state: .replaced)
    let nodes = (0..<count).map { Self.node("n\($0)") }
    return (old, nodes, nodes.map { Self.task("old-\($0.id)", on: $0.id, of: old, .running) })
  }

  @Test("parallelism N replaces N nodes at once and keeps N in progress; 0 replaces all at once")
  func parallelism() {
    var new = Self.deployment("d2", version: "2.0.0")
    new.parallelism = 3
    let (old, nodes, active) = Self.rollout(count: 10, new)
    let first = Self.planner().plan(deployments: [old, new], nodes: nodes, active: active, nowMs: 5)
    #expect(first.tasks.filter { !$0.active }.count == 3)
    // One of the three runs: one more slot.
    var next = active.filter { task in !first.tasks.contains { $0.id == task.id } }
    let created = first.tasks.filter(\.active)
    next += created.enumerated().map { index, task in
      Self.task(task.id, on: task.nodeId, of: new, index == 0 ? .running : .starting)
    }
    let second = Self.planner().plan(deployments: [old, new], nodes: nodes, active: next, nowMs: 6)
    #expect(second.tasks.filter { !$0.active }.count == 1)

    new.parallelism = 0
    let all = Self.planner().plan(deployments: [old, new], nodes: nodes, active: active, nowMs: 5)
    #expect(all.tasks.filter { !$0.active }.count == 10)
  }

  @Test("a delay holds the next replacement until it passed since the last one settled, and asks to be planned then")
  func delay() {
    var new = Self.deployment("d2", version: "2.0.0")
    new.delayMs = 1_000
    let (old, nodes, active) = Self.rollout(count: 3, new)
    var tasks = active
    tasks[0] = Self.task("new-0", on: "n0", of: new, .running)
    tasks[0].updatedMs = 10_000
    let early = Self.planner().plan(deployments: [old, new], nodes: nodes, active: tasks, nowMs: 10_500)
    #expect(early.tasks.isEmpty)
    #expect(early.recheckAtMs == 11_000)
    let late = Self.planner().plan(deployments: [old, new], nodes: nodes, active: tasks, nowMs: 11_000)
    #expect(late.tasks.filter { !$0.active }.count == 1)
  }

  @Test("a monitored task counts as in progress until its period ends, so a failure in it stops the rollout first")
  func monitor() {
    var new = Self.deployment("d2", version: "2.0.0")
    new.monitorMs = 5_000
    let (old, nodes, active) = Self.rollout(count: 3, new)
    var tasks = active
    tasks[0] = Self.task("new-0", on: "n0", of: new, .running)
    tasks[0].updatedMs = 10_000
    let watching = Self.planner().plan(deployments: [old, new], nodes: nodes, active: tasks, nowMs: 12_000)
    #expect(watching.tasks.isEmpty && watching.recheckAtMs == 15_000)
    let after = Self.planner().plan(deployments: [old, new], nodes: nodes, active: tasks, nowMs: 15_000)
    #expect(after.tasks.filter { !$0.active }.count == 1)
    tasks[0].state = .failed
    let failed = Self.planner().plan(deployments: [old, new], nodes: nodes, active: tasks, nowMs: 12_000)
    #expect(failed.tasks.isEmpty)
    #expect(failed.deployments.map(\.state) == [.paused(reason: "1 task(s) of 2.0.0 failed (max 0)")])
  }

  @Test("failure action rollback: the rollout is rolled back, the previous deployment is live again and replaces it")
  func rollback() {
    var new = Self.deployment("d2", version: "2.0.0")
    new.failureAction = .rollback
    new.previousId = "d1"
    new.parallelism = 0
    let (old, nodes, active) = Self.rollout(count: 3, new)
    var tasks = active
    tasks[0] = Self.task("new-0", on: "n0", of: new, .failed)
    tasks[1] = Self.task("new-1", on: "n1", of: new, .running)
    let failed = Self.planner().plan(deployments: [old, new], nodes: nodes, active: tasks, nowMs: 20)
    #expect(failed.tasks.isEmpty)
    let states = Dictionary(uniqueKeysWithValues: failed.deployments.map { ($0.id, $0.state) })
    #expect(states["d1"] == .rolling)
    #expect(states["d2"] == .rolledBack(reason: "1 task(s) of 2.0.0 failed (max 0); back to 1.0.0"))
    #expect(failed.recheckAtMs == 20)
    // The next pass: the previous deployment takes back every node.
    var rolledBack = new
    rolledBack.state = states["d2"] ?? .rolling
    var live = old
    live.state = .rolling
    // At its own parallelism: one at a time, then all at once.
    let one = Self.planner().plan(deployments: [rolledBack, live], nodes: nodes, active: tasks, nowMs: 21)
    #expect(one.tasks.filter { !$0.active }.map(\.id) == ["new-0"])
    live.parallelism = 0
    let back = Self.planner().plan(deployments: [rolledBack, live], nodes: nodes, active: tasks, nowMs: 21)
    let retired = back.tasks.filter { !$0.active }
    #expect(Set(retired.map(\.id)) == ["new-0", "new-1"], "\(retired.map(\.id))")
    #expect(back.tasks.filter(\.active).allSatisfy { $0.deploymentId == "d1" && $0.version == "1.0.0" })
    // Without a previous deployment, a rollback pauses.
    new.previousId = ""
    let alone = Self.planner().plan(deployments: [old, new], nodes: nodes, active: tasks, nowMs: 20)
    #expect(alone.deployments.map(\.state) == [.paused(reason: "1 task(s) of 2.0.0 failed (max 0)")])
  }
}
