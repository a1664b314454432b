/// The liveness rule, after SwarmKit's dispatcher: a node is READY while
/// its session's heartbeats arrive and DOWN once none came for the
/// missed periods of ``ControlPlaneTiming/downAfter(given:)``; a heartbeat on the current session
/// brings it back. Heartbeat times reach the store at most every
/// ``persistIntervalMs`` per node (every 5 s heartbeat of 10,000 nodes
/// written would be 2,000 writes a second), and at once on a change of
/// status.
///
/// No I/O and no clock of its own: the caller passes the time in and
/// carries out the ``StatusChange``s it returns.
package struct NodeLiveness: Sendable {
  /// A node's status to write, with its last heartbeat time when known.
  package struct StatusChange: Sendable, Hashable {
    package var id: String
    package var status: NodeStatus
    package var lastHeartbeatMs: Int64?

    package init(id: String, status: NodeStatus, lastHeartbeatMs: Int64?) {
      self.id = id
      self.status = status
      self.lastHeartbeatMs = lastHeartbeatMs
    }
  }

  /// What a heartbeat means.
  package enum Heartbeat: Sendable, Hashable {
    /// Not the node's current session: the agent must open a new one.
    case unknownSession
    /// Alive; `revived` when it was DOWN (write READY now).
    case alive(revived: Bool)
  }

  private struct Node {
    var sessionId: String
    var deadline: ContinuousClock.Instant
    var lastHeartbeatMs: Int64
    var persistedHeartbeatMs: Int64
    var status: NodeStatus
  }

  /// How often a live node's heartbeat time is written (15 s).
  package static let persistIntervalMs: Int64 = 15_000

  private let timing: ControlPlaneTiming
  private var nodes: [String: Node] = [:]

  package init(timing: ControlPlaneTiming) {
    self.timing = timing
  }

  /// The period to give nodes now: longer as more nodes hold sessions
  /// here (``ControlPlaneTiming/period(nodes:)``).
  package var period: Duration { timing.period(nodes: nodes.count) }

  /// The next period to give a node, with jitter (`random` in 0..<1).
  package func nextPeriod(random: Double) -> Duration { timing.nextPeriod(random: random, nodes: nodes.count) }

  /// A session opened (its time already written with READY) and given
  /// `period`: the node is READY until `now` + that many missed periods
  /// (at least ``ControlPlaneTiming/downAfter``). Resuming the current
  /// session keeps its id; anything else takes `newID`. Returns the
  /// session's id.
  package mutating func sessionOpened(
    _ node: String, resume: String, newID: String, now: ContinuousClock.Instant, nowMs: Int64,
    period: Duration = .zero
  ) -> String {
    let current = nodes[node]?.sessionId
    let id = (current == resume && !resume.isEmpty) ? resume : newID
    nodes[node] = Node(
      sessionId: id, deadline: now + timing.downAfter(given: period), lastHeartbeatMs: nowMs,
      persistedHeartbeatMs: nowMs, status: .ready)
    return id
  }

  /// A heartbeat on `sessionId` at `now`, answered with `period`.
  package mutating func heartbeat(
    _ node: String, sessionId: String, now: ContinuousClock.Instant, nowMs: Int64, period: Duration = .zero
  ) -> Heartbeat {
    guard var entry = nodes[node], entry.sessionId == sessionId else { return .unknownSession }
    let revived = entry.status != .ready
    entry.deadline = now + timing.downAfter(given: period)
    entry.lastHeartbeatMs = nowMs
    entry.status = .ready
    if revived { entry.persistedHeartbeatMs = nowMs }
    nodes[node] = entry
    return .alive(revived: revived)
  }

  /// Marks DOWN the READY nodes whose deadline passed, and returns those
  /// with the heartbeat times due to be written.
  package mutating func sweep(now: ContinuousClock.Instant) -> [StatusChange] {
    var changes: [StatusChange] = []
    // Changed through the values' indices: assigning `nodes[id]` while
    // iterating `nodes` would copy the whole table (10,000 entries) on
    // every sweep.
    var index = nodes.values.startIndex
    while index != nodes.values.endIndex {
      defer { nodes.values.formIndex(after: &index) }
      let entry = nodes.values[index]
      let expired = entry.status == .ready && now > entry.deadline
      guard expired || entry.lastHeartbeatMs - entry.persistedHeartbeatMs >= Self.persistIntervalMs else { continue }
      if expired { nodes.values[index].status = .down }
      nodes.values[index].persistedHeartbeatMs = entry.lastHeartbeatMs
      changes.append(
        StatusChange(id: nodes.keys[index], status: nodes.values[index].status, lastHeartbeatMs: entry.lastHeartbeatMs))
    }
    return changes
  }

  /// Forgets `node` (removed by an operator): its session ends, and its
  /// heartbeats are unknown from now on.
  package mutating func forget(_ node: String) { nodes[node] = nil }

  /// Nodes that are DOWN now.
  package var downNodes: Set<String> { Set(nodes.filter { $0.value.status == .down }.keys) }

  /// The current session of `node`, if it has one.
  package func session(of node: String) -> String? { nodes[node]?.sessionId }
}
