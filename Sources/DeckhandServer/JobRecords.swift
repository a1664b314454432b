package import DeckhandCore
package import Foundation
package import GRDB

/// A job in the queue: its spec (the `deckhand.server.v1.Job` message,
/// serialized) and the columns the queue and the listings need.
///
/// Rows are read and written by column position, not through `Codable`:
/// the queue reads and writes a job several times in its life, and
/// GRDB's keyed decoding (a column lookup by name for every field) was
/// the largest cost of a no-op job on the server.
///
/// The state, times and outcome are a ``JobLifecycle``, whose rules move
/// them; its fields read as the record's own (`job.state`, `job.runnerId`).
@dynamicMemberLookup
package struct JobRecord: Sendable, Hashable {
  package var id: String
  /// The serialized Job as queued (operation, target, options).
  package var spec: Data
  package var singletonId: String
  /// Node id (or "" for none).
  package var targetRunner: String
  package var targetLabels: [String: String]
  package var project: String
  package var queuedMs: Int64
  /// State, times and outcome.
  package var lifecycle: JobLifecycle
  /// The last output sequence number stored.
  package var outputSequence: Int64

  package init(
    id: String, spec: Data, singletonId: String, targetRunner: String, targetLabels: [String: String], project: String,
    queuedMs: Int64, lifecycle: JobLifecycle, outputSequence: Int64 = 0
  ) {
    self.id = id
    self.spec = spec
    self.singletonId = singletonId
    self.targetRunner = targetRunner
    self.targetLabels = targetLabels
    self.project = project
    self.queuedMs = queuedMs
    self.lifecycle = lifecycle
    self.outputSequence = outputSequence
  }

  package subscript<Value>(dynamicMember keyPath: WritableKeyPath<JobLifecycle, Value>) -> Value {
    get { lifecycle[keyPath: keyPath] }
    set { lifecycle[keyPath: keyPath] = newValue }
  }
}

extension JobRecord: FetchableRecord, PersistableRecord {
  package static let databaseTableName = "job"

  /// The columns, in the order ``init(row:)`` reads them.
  static let columns = [
    "id", "spec", "singletonId", "targetRunner", "targetLabels", "project", "state", "runnerId", "queuedMs",
    "assignedMs", "ackedMs", "completeMs", "expiresMs", "heartbeatMs", "exitCode", "error", "cancelRequested",
    "forceCancel", "resultCode", "results", "outputSequence",
  ]
  package static var databaseSelection: [any SQLSelectable] { columns.map { Column($0) } }

  package init(row: Row) throws {
    let id: String = row[0]
    let stateNumber: Int = row[6]
    guard let state = JobState(rawValue: stateNumber) else {
      throw DeckhandError(.internalError, "job \(id) has an unknown state \(stateNumber) in the store")
    }
    self.init(
      id: id, spec: row[1], singletonId: row[2], targetRunner: row[3],
      targetLabels: try JSONColumn.decode(row[4], empty: "{}"), project: row[5], queuedMs: row[8],
      lifecycle: JobLifecycle(
        state: state, runnerId: row[7], assignedMs: row[9], ackedMs: row[10], completeMs: row[11],
        expiresMs: row[12], heartbeatMs: row[13], exitCode: row[14], error: row[15], cancelRequested: row[16],
        forceCancel: row[17], resultCode: row[18], results: try JSONColumn.decode(row[19], empty: "[]")),
      outputSequence: row[20])
  }

  package func encode(to container: inout PersistenceContainer) throws {
    for (column, value) in zip(Self.columns, try values()) { container[column] = value }
  }

  /// The column values, in the order of ``columns``.
  func values() throws -> [(any DatabaseValueConvertible)?] {
    let life = lifecycle
    return [
      id, spec, singletonId, targetRunner, try JSONColumn.encode(targetLabels, empty: "{}"), project,
      life.state.rawValue, life.runnerId, queuedMs, life.assignedMs, life.ackedMs, life.completeMs, life.expiresMs,
      life.heartbeatMs, life.exitCode, life.error, life.cancelRequested, life.forceCancel, life.resultCode,
      try JSONColumn.encode(life.results, empty: "[]"), outputSequence,
    ]
  }

  /// Statements the queue runs for every job, prepared once per
  /// connection (`Database.cachedStatement`).
  static let selectSQL = "SELECT \(columns.joined(separator: ", ")) FROM job"
  static let selectByIdSQL = selectSQL + " WHERE id = ?"
  static let insertSQL =
    "INSERT INTO job (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
  static let updateSQL =
    "UPDATE job SET \(columns.dropFirst().map { "\($0) = ?" }.joined(separator: ", ")) WHERE id = ?"

  static func fetch(_ db: Database, id: String) throws -> JobRecord? {
    try fetchOne(db.cachedStatement(sql: selectByIdSQL), arguments: [id])
  }

  func insertRow(_ db: Database) throws {
    try db.cachedStatement(sql: Self.insertSQL).execute(arguments: StatementArguments(try values()))
  }

  func updateRow(_ db: Database) throws {
    var values = try values()
    values.append(values.removeFirst())
    try db.cachedStatement(sql: Self.updateSQL).execute(arguments: StatementArguments(values))
  }
}

/// JSON text columns, with the empty value (most jobs' labels and
/// results) read and written without a JSON coder.
enum JSONColumn {
  static func decode<Value: Decodable & ExpressibleByEmpty>(_ text: String, empty: String) throws -> Value {
    if text == empty { return Value.empty }
    return try JSONDecoder().decode(Value.self, from: Data(text.utf8))
  }

  static func encode<Value: Encodable & Collection>(_ value: Value, empty: String) throws -> String {
    if value.isEmpty { return empty }
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return String(decoding: try encoder.encode(value), as: UTF8.self)
  }
}

/// A collection with an empty value, for ``JSONColumn``.
protocol ExpressibleByEmpty { static var empty: Self { get } }
extension Dictionary: ExpressibleByEmpty { static var empty: Self { [:] } }
extension Array: ExpressibleByEmpty { static var empty: Self { [] } }

/// One stored output event of a job.
package struct JobOutputRecord: Codable, Sendable, Hashable {
  package var jobId: String
  package var sequence: Int64
  /// `OutputEvent.Kind` raw value.
  package var kind: Int
  package var data: Data
  package var timestampMs: Int64
}

/// A config variable.
package struct ConfigRecord: Codable, Sendable, Hashable {
  /// `ConfigVariable.Scope` raw value.
  package var scope: Int
  package var target: String
  package var name: String
  package var value: String
  package init(scope: Int, target: String, name: String, value: String) {
    self.scope = scope
    self.target = target
    self.name = name
    self.value = value
  }
}

/// What a runner is, for matching jobs.
package struct RunnerIdentity: Sendable, Hashable {
  package var id: String
  package var name: String
  package var labels: [String: String]
  package var byIdOnly: Bool
  package init(id: String, name: String, labels: [String: String], byIdOnly: Bool) {
    self.id = id
    self.name = name
    self.labels = labels
    self.byIdOnly = byIdOnly
  }
}

/// What ``JobStore/claim(runner:byIdOnly:now:)`` found.
package struct JobClaim: Sendable {
  /// The runner as it is now.
  package var runner: RunnerIdentity
  /// The job it took, if any.
  package var job: JobRecord?
  /// Another queued job the runner could have taken: whom it is for.
  package var next: RunnerWaiters.Target?
}
