/// A node: one agent that joined.
package struct NodeRecord: Codable, Sendable, Hashable {
  package var id: String
  package var name: String
  package var hostname: String
  /// The operator's labels (and its join token's): what selectors, job
  /// targets and config scopes match.
  package var labels: [String: String]
  package var platform: String
  package var agentVersion: String
  package var address: String
  package var plugins: [String: String]
  package var status: NodeStatus
  package var lastHeartbeatMs: Int64
  package var createdMs: Int64
  package var credentialHash: String
  /// What the agent reports about itself: shown, never matched.
  package var agentLabels: [String: String]
  /// The join token the node joined with.
  package var joinTokenId: String
  /// Whether new work may reach it.
  package var availability: NodeAvailability

  package init(
    id: String, name: String, hostname: String, labels: [String: String], platform: String, agentVersion: String,
    address: String, plugins: [String: String], status: NodeStatus, lastHeartbeatMs: Int64, createdMs: Int64,
    credentialHash: String, agentLabels: [String: String] = [:], joinTokenId: String = "",
    availability: NodeAvailability = .active
  ) {
    self.availability = availability
    self.agentLabels = agentLabels
    self.joinTokenId = joinTokenId
    self.id = id
    self.name = name
    self.hostname = hostname
    self.labels = labels
    self.platform = platform
    self.agentVersion = agentVersion
    self.address = address
    self.plugins = plugins
    self.status = status
    self.lastHeartbeatMs = lastHeartbeatMs
    self.createdMs = createdMs
    self.credentialHash = credentialHash
  }

  /// Whether every label of `selector` is one of this node's.
  package func matches(_ selector: [String: String]) -> Bool {
    selector.allSatisfy { labels[$0.key] == $0.value }
  }
}

/// Label keys and values as an operator may set them: Kubernetes' rule for
/// label values, with keys of the same characters (1 to 63 each).
package enum LabelRule {
  /// Why `key`=`value` is not a label, or nil.
  package static func problem(key: String, value: String) -> String? {
    let characters = "1 to 63 of a-z, A-Z, 0-9, '-', '_', '.', starting and ending with a letter or digit"
    if !valid(key) { return "label key \"\(key)\" must be \(characters)" }
    if !value.isEmpty && !valid(value) { return "label value \"\(value)\" of \(key) must be empty or \(characters)" }
    return nil
  }

  private static func valid(_ text: String) -> Bool {
    let scalars = Array(text.unicodeScalars)
    guard let first = scalars.first, let last = scalars.last, scalars.count <= 63,
      alphanumeric(first), alphanumeric(last)
    else { return false }
    return scalars.allSatisfy { alphanumeric($0) || "-_.".unicodeScalars.contains($0) }
  }

  private static func alphanumeric(_ scalar: Unicode.Scalar) -> Bool {
    ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
  }
}

/// Whether new work may reach a node: the operator's choice, after
/// SwarmKit's node availability.
package enum NodeAvailability: String, Codable, Sendable, Hashable {
  /// New deployment tasks and jobs reach it.
  case active
  /// Nothing new reaches it; what runs there goes on.
  case drain
}
