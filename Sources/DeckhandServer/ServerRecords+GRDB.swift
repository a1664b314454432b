package import DeckhandCore
internal import Foundation
package import GRDB

// The control plane's records (DeckhandCore) as GRDB rows. Typed states are
// stored as they always were: task states as their numbers, node statuses,
// token roles and deployment states as their text.

extension NodeRecord: FetchableRecord, PersistableRecord {
  package static let databaseTableName = "node"

  /// Read by column position: the reconcile loop and the listings read
  /// every node, and keyed `Decodable` decoding was most of their cost.
  package static var databaseSelection: [any SQLSelectable] {
    [
      "id", "name", "hostname", "labels", "platform", "agentVersion", "address", "plugins", "status",
      "lastHeartbeatMs", "createdMs", "credentialHash", "agentLabels", "joinTokenId", "availability",
    ].map { Column($0) }
  }

  package init(row: Row) throws {
    let statusText: String = row[8]
    guard let status = NodeStatus(rawValue: statusText) else {
      throw DeckhandError(
        .internalError, "node \(row[0] as String) has an unknown status \"\(statusText)\" in the store")
    }
    self.init(
      id: row[0], name: row[1], hostname: row[2], labels: try JSONColumn.decode(row[3], empty: "{}"),
      platform: row[4], agentVersion: row[5], address: row[6], plugins: try JSONColumn.decode(row[7], empty: "{}"),
      status: status, lastHeartbeatMs: row[9], createdMs: row[10], credentialHash: row[11],
      agentLabels: try JSONColumn.decode(row[12], empty: "{}"), joinTokenId: row[13],
      availability: NodeAvailability(rawValue: row[14]) ?? .drain)
  }
}

extension TokenRecord: FetchableRecord, PersistableRecord {
  package static let databaseTableName = "token"
}

extension DeploymentRecord: FetchableRecord, PersistableRecord {
  package static let databaseTableName = "deployment"
}

extension TaskRecord: FetchableRecord, PersistableRecord {
  package static let databaseTableName = "task"

  /// The columns, in the order ``init(row:)`` reads them (by position:
  /// see ``NodeRecord``).
  static let columns = [
    "id", "deploymentId", "nodeId", "plugin", "version", "artifactDigest", "artifactSize", "configJSON", "state",
    "message", "updatedMs", "active", "traceContext",
  ]
  package static var databaseSelection: [any SQLSelectable] { columns.map { Column($0) } }
  /// One task by id, as a statement to prepare once (status updates).
  static let selectByIdSQL = "SELECT \(columns.joined(separator: ", ")) FROM task WHERE id = ?"

  package init(row: Row) throws {
    let number: Int = row[8]
    guard let state = TaskState(rawValue: number) else {
      throw DeckhandError(.internalError, "task \(row[0] as String) has an unknown state \(number) in the store")
    }
    self.init(
      id: row[0], deploymentId: row[1], nodeId: row[2], plugin: row[3], version: row[4], artifactDigest: row[5],
      artifactSize: row[6], configJSON: row[7], state: state, message: row[9], updatedMs: row[10], active: row[11],
      traceContext: try JSONColumn.decode(row[12], empty: "{}"))
  }
}

extension ArtifactRecord: FetchableRecord, PersistableRecord {
  package static let databaseTableName = "artifact"
}

extension JobOutputRecord: FetchableRecord, PersistableRecord {
  package static let databaseTableName = "jobOutput"
}

extension ConfigRecord: FetchableRecord, PersistableRecord {
  package static let databaseTableName = "configVariable"
}

/// Milliseconds since 1970.
package func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
