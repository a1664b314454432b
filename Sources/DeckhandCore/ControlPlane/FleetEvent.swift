/// Something that happened in the fleet, as `deckhand events` shows it.
package struct FleetEvent: Sendable, Hashable {
  /// What kind of thing happened.
  package enum Kind: String, Sendable, Hashable, CaseIterable {
    case nodeJoined = "node.joined"
    case nodeReady = "node.ready"
    case nodeDown = "node.down"
    case nodeDrained = "node.drained"
    case nodeActivated = "node.activated"
    case nodeRemoved = "node.removed"
    case taskState = "task.state"
    case pluginCrashed = "plugin.crashed"
    case pluginRestarted = "plugin.restarted"
    case pluginUnhealthy = "plugin.unhealthy"
    case pluginOOM = "plugin.oom"
    case rolloutStarted = "rollout.started"
    case rolloutPaused = "rollout.paused"
    case rolloutRolledBack = "rollout.rolled_back"
    case rolloutDone = "rollout.done"
    case jobQueued = "job.queued"
    case jobAssigned = "job.assigned"
    case jobFinished = "job.finished"

    /// The kinds an agent may report of its plugins.
    package static let reportedByAgents: Set<Kind> = [.pluginCrashed, .pluginRestarted, .pluginUnhealthy, .pluginOOM]
  }

  /// Set by the store when it records the event (0 before).
  package var sequence: Int64
  package var atMs: Int64
  package var kind: Kind
  package var nodeId: String
  package var nodeName: String
  package var plugin: String
  /// The deployment, task or job it concerns, if any.
  package var subject: String
  package var message: String

  package init(
    sequence: Int64 = 0, atMs: Int64, kind: Kind, nodeId: String = "", nodeName: String = "", plugin: String = "",
    subject: String = "", message: String = ""
  ) {
    self.sequence = sequence
    self.atMs = atMs
    self.kind = kind
    self.nodeId = nodeId
    self.nodeName = nodeName
    self.plugin = plugin
    self.subject = subject
    self.message = message
  }

  /// Most events an agent may report with one heartbeat.
  package static let maxReportedPerHeartbeat = 64
  /// Longest message kept from an agent's report, in bytes.
  package static let maxReportedMessage = 1024

  /// An agent's report of one plugin event, checked: nil unless its kind is
  /// one agents may report and its plugin name is valid; its message is cut
  /// to ``maxReportedMessage`` bytes (at a character boundary) and its
  /// time is the server's (a node's clock is its own word).
  package static func reported(
    kind: String, plugin: String, message: String, nodeId: String, nodeName: String, nowMs: Int64
  ) -> FleetEvent? {
    guard let kind = Kind(rawValue: kind), Kind.reportedByAgents.contains(kind), PluginName.isValid(plugin) else {
      return nil
    }
    var cut = ""
    for character in message {
      guard cut.utf8.count + character.utf8.count <= maxReportedMessage else { break }
      cut.append(character)
    }
    return FleetEvent(atMs: nowMs, kind: kind, nodeId: nodeId, nodeName: nodeName, plugin: plugin, message: cut)
  }

  /// Whether it concerns `node` (an id or a name) and `plugin`, when given.
  package func matches(node: String?, plugin: String?) -> Bool {
    if let node, !node.isEmpty, nodeId != node, nodeName != node { return false }
    if let plugin, !plugin.isEmpty, self.plugin != plugin { return false }
    return true
  }
}
