internal import Foundation
package import GRDB

/// A node: one agent that joined.
package struct NodeRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  package static let databaseTableName = "node"
  package var id: String
  package var name: String
  package var hostname: String
  package var labels: [String: String]
  package var platform: String
  package var agentVersion: String
  package var address: String
  package var plugins: [String: String]
  /// "UNKNOWN", "READY" or "DOWN".
  package var status: String
  package var lastHeartbeatMs: Int64
  package var createdMs: Int64
  package var credentialHash: String
}

extension NodeRecord {
  /// Read by column position: the reconcile loop and the listings read
  /// every node, and keyed `Decodable` decoding was most of their cost.
  package static var databaseSelection: [any SQLSelectable] {
    [
      "id", "name", "hostname", "labels", "platform", "agentVersion", "address", "plugins", "status",
      "lastHeartbeatMs", "createdMs", "credentialHash",
    ].map { Column($0) }
  }

  package init(row: Row) throws {
    self.init(
      id: row[0], name: row[1], hostname: row[2], labels: try JSONColumn.decode(row[3], empty: "{}"),
      platform: row[4], agentVersion: row[5], address: row[6], plugins: try JSONColumn.decode(row[7], empty: "{}"),
      status: row[8], lastHeartbeatMs: row[9], createdMs: row[10], credentialHash: row[11])
  }
}

/// A token: a worker join token or an operator token, stored hashed.
package struct TokenRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  package static let databaseTableName = "token"
  package var id: String
  /// "worker" or "operator".
  package var role: String
  package var secretHash: String
  package var createdMs: Int64
  /// 0: never.
  package var expiresMs: Int64
  package var revoked: Bool
  package var description: String
}

/// The desired state for one plugin: a version, where (a selector), with
/// what config.
package struct DeploymentRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  package static let databaseTableName = "deployment"
  package var id: String
  package var plugin: String
  package var version: String
  package var artifactDigest: String
  package var artifactSize: Int64
  package var selector: [String: String]
  package var configJSON: String
  package var maxFailures: Int
  /// "rolling", "complete", "paused: …" or "replaced".
  package var state: String
  package var createdMs: Int64
}

/// One plugin on one node.
package struct TaskRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  package static let databaseTableName = "task"
  package var id: String
  package var deploymentId: String
  package var nodeId: String
  package var plugin: String
  package var version: String
  package var artifactDigest: String
  package var artifactSize: Int64
  package var configJSON: String
  /// `Deckhand_Dispatcher_V1_TaskState` raw value.
  package var state: Int
  package var message: String
  package var updatedMs: Int64
  /// False once the task is removed (replaced, or its node no longer
  /// matches): it is then history, not an assignment.
  package var active: Bool
}

extension TaskRecord {
  /// The columns, in the order ``init(row:)`` reads them (by position:
  /// see ``NodeRecord``).
  static let columns = [
    "id", "deploymentId", "nodeId", "plugin", "version", "artifactDigest", "artifactSize", "configJSON", "state",
    "message", "updatedMs", "active",
  ]
  package static var databaseSelection: [any SQLSelectable] { columns.map { Column($0) } }
  /// One task by id, as a statement to prepare once (status updates).
  static let selectByIdSQL = "SELECT \(columns.joined(separator: ", ")) FROM task WHERE id = ?"

  package init(row: Row) throws {
    self.init(
      id: row[0], deploymentId: row[1], nodeId: row[2], plugin: row[3], version: row[4], artifactDigest: row[5],
      artifactSize: row[6], configJSON: row[7], state: row[8], message: row[9], updatedMs: row[10], active: row[11])
  }
}

/// A plugin package, stored content-addressed.
package struct ArtifactRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  package static let databaseTableName = "artifact"
  package var digest: String
  package var name: String
  package var version: String
  package var platform: String
  package var size: Int64
  package var createdMs: Int64
}

/// Milliseconds since 1970.
package func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
