/// A node: one agent that joined.
package struct NodeRecord: Codable, Sendable, Hashable {
  package var id: String
  package var name: String
  package var hostname: String
  package var labels: [String: String]
  package var platform: String
  package var agentVersion: String
  package var address: String
  package var plugins: [String: String]
  package var status: NodeStatus
  package var lastHeartbeatMs: Int64
  package var createdMs: Int64
  package var credentialHash: String

  package init(
    id: String, name: String, hostname: String, labels: [String: String], platform: String, agentVersion: String,
    address: String, plugins: [String: String], status: NodeStatus, lastHeartbeatMs: Int64, createdMs: Int64,
    credentialHash: String
  ) {
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
