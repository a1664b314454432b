/// The rollout rule: turns deployments, nodes and their active tasks into
/// the tasks and deployment states to write and the nodes to wake. No I/O:
/// the caller reads, plans and writes (``ControlPlane`` on the server).
///
/// - One task per node whose labels match the deployment's selector; a
///   node that stops matching loses its task (REMOVED).
/// - A new version replaces the plugin's older tasks `parallelism` at a
///   time (0: all at once): a replacement starts while fewer than that of
///   the new version's tasks are in progress, or running for less than
///   `monitorMs` (watched: a failure then counts), and once `delayMs`
///   passed since the last one settled.
/// - More than `maxFailures` failed tasks stop the rollout: with
///   `failureAction` pause, the deployment pauses and replaces nothing more
///   (the failed node keeps its task, and the agent its old revision); with
///   rollback, it is rolled back and the deployment it replaced is live
///   again, replacing its tasks on every node the same way.
/// - A deployment is complete when every matching node runs its version
///   and none is starting.
package struct RolloutPlanner: Sendable {
  /// What to write after one planning pass.
  package struct Plan: Sendable, Equatable {
    /// Deployments whose state changed.
    package var deployments: [DeploymentRecord] = []
    /// New tasks, and retired ones (inactive, REMOVED).
    package var tasks: [TaskRecord] = []
    /// Nodes whose assignments changed.
    package var wake: Set<String> = []
    /// When to plan again though nothing changed (a delay or a monitor
    /// period ends), in ms since 1970.
    package var recheckAtMs: Int64?

    package var isEmpty: Bool { deployments.isEmpty && tasks.isEmpty }
  }

  /// Makes the id of a new task (random on the server; fixed in tests).
  private let makeID: @Sendable () -> String

  package init(makeID: @escaping @Sendable () -> String) {
    self.makeID = makeID
  }

  /// One pass over every live (not replaced) deployment, at `nowMs`.
  package func plan(
    deployments: [DeploymentRecord], nodes: [NodeRecord], active: [TaskRecord], nowMs: Int64
  ) -> Plan {
    var plan = Plan()
    for deployment in deployments where deployment.state.isLive {
      self.plan(deployment, all: deployments, nodes: nodes, active: active, nowMs: nowMs, into: &plan)
    }
    return plan
  }

  private func plan(
    _ deployment: DeploymentRecord, all deployments: [DeploymentRecord], nodes: [NodeRecord], active: [TaskRecord],
    nowMs: Int64, into plan: inout Plan
  ) {
    let matching = nodes.filter { $0.matches(deployment.selector) }
    let matchingIds = Set(matching.map(\.id))
    let pluginTasks = active.filter { $0.plugin == deployment.plugin }
    var byNode: [String: TaskRecord] = [:]
    for task in pluginTasks { byNode[task.nodeId] = task }
    let firstWrite = plan.tasks.endIndex

    func newTask(on node: String) {
      plan.tasks.append(
        TaskRecord(
          id: makeID(), deploymentId: deployment.id, nodeId: node, plugin: deployment.plugin,
          version: deployment.version, artifactDigest: deployment.artifactDigest,
          artifactSize: deployment.artifactSize, configJSON: deployment.configJSON, state: .new, message: "",
          updatedMs: nowMs, active: true, traceContext: deployment.traceContext))
      plan.wake.insert(node)
    }
    func retire(_ task: TaskRecord, _ why: String) {
      var task = task
      task.active = false
      task.state = .removed
      task.message = why
      task.updatedMs = nowMs
      plan.tasks.append(task)
      plan.wake.insert(task.nodeId)
    }

    // Nodes that no longer match.
    for task in pluginTasks where !matchingIds.contains(task.nodeId) {
      retire(task, "its node no longer matches the selector")
    }
    // A drained node keeps what it runs and gets nothing new: no first
    // task, no replacement.
    let placeable = matching.filter { $0.availability == .active }
    // Nodes with no task for the plugin: a task of this deployment.
    for node in placeable where byNode[node.id] == nil { newTask(on: node.id) }
    // Rolling replacement of older deployments' tasks.
    let mine = pluginTasks.filter { $0.deploymentId == deployment.id && matchingIds.contains($0.nodeId) }
    let failures = mine.filter { $0.state == .failed }.count
    // Running, but still watched: counts as in progress.
    let watched = mine.filter { $0.state == .running && nowMs < $0.updatedMs + deployment.monitorMs }
    for task in watched { plan.recheck(at: task.updatedMs + deployment.monitorMs) }
    let inProgress = mine.filter { $0.state.isInProgress }.count + watched.count
    let outdated = placeable.compactMap { byNode[$0.id] }.filter { $0.deploymentId != deployment.id }
    let next: DeploymentState
    if failures > deployment.maxFailures {
      let reason = "\(failures) task(s) of \(deployment.version) failed (max \(deployment.maxFailures))"
      if deployment.failureAction == .rollback,
        var previous = deployments.first(where: { $0.id == deployment.previousId && !$0.state.isLive })
      {
        // The previous deployment is live again: its own pass (the next)
        // replaces this one's tasks everywhere.
        next = .rolledBack(reason: "\(reason); back to \(previous.version)")
        previous.state = .rolling
        plan.deployments.append(previous)
        plan.recheck(at: nowMs)
      } else {
        next = .paused(reason: reason)
      }
    } else if !outdated.isEmpty {
      // The last replacement that settled, for the delay between them.
      let lastSettled = mine.filter { $0.state == .running }.map { $0.updatedMs + deployment.monitorMs }.max() ?? 0
      let waitUntil = mine.isEmpty ? 0 : lastSettled + deployment.delayMs
      let slots = deployment.parallelism <= 0 ? outdated.count : max(0, deployment.parallelism - inProgress)
      if deployment.delayMs > 0 && nowMs < waitUntil {
        plan.recheck(at: waitUntil)
      } else {
        // With a delay, one replacement per settled one.
        let count = deployment.delayMs > 0 ? min(slots, 1) : slots
        for task in outdated.prefix(count) {
          retire(task, "replaced by \(deployment.plugin)@\(deployment.version)")
          newTask(on: task.nodeId)
        }
      }
      next = .rolling
    } else {
      // Complete only on a pass that changed none of its tasks.
      let wroteOwn = plan.tasks[firstWrite...].contains { $0.deploymentId == deployment.id }
      next = inProgress == 0 && !wroteOwn ? .complete : .rolling
    }
    if next != deployment.state {
      var changed = deployment
      changed.state = next
      plan.deployments.append(changed)
    }
  }
}

extension RolloutPlanner.Plan {
  /// Asks for a pass at `ms` (the earliest asked wins).
  mutating func recheck(at ms: Int64) {
    recheckAtMs = min(recheckAtMs ?? ms, ms)
  }
}
