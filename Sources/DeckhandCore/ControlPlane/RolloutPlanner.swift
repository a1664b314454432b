/// The rollout rule: turns deployments, nodes and their active tasks into
/// the tasks and deployment states to write and the nodes to wake. No I/O:
/// the caller reads, plans and writes (``ControlPlane`` on the server).
///
/// - One task per node whose labels match the deployment's selector; a
///   node that stops matching loses its task (REMOVED).
/// - A new version replaces the plugin's older tasks node by node: one at a
///   time, each once no task of the new version is in progress.
/// - More than `maxFailures` failed tasks pause the deployment; a paused
///   deployment replaces nothing more (the failed node keeps its task, and
///   the agent its old revision).
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
    for deployment in deployments where deployment.state != .replaced {
      self.plan(deployment, nodes: nodes, active: active, nowMs: nowMs, into: &plan)
    }
    return plan
  }

  private func plan(
    _ deployment: DeploymentRecord, nodes: [NodeRecord], active: [TaskRecord], nowMs: Int64, into plan: inout Plan
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
          updatedMs: nowMs, active: true))
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
    let inProgress = mine.filter { $0.state.isInProgress }.count
    let outdated = placeable.compactMap { byNode[$0.id] }.filter { $0.deploymentId != deployment.id }
    let next: DeploymentState
    if failures > deployment.maxFailures {
      next = .paused(
        reason: "\(failures) task(s) of \(deployment.version) failed (max \(deployment.maxFailures))")
    } else if let first = outdated.first {
      if inProgress == 0 {
        retire(first, "replaced by \(deployment.plugin)@\(deployment.version)")
        newTask(on: first.nodeId)
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
