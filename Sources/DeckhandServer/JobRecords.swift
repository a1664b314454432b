package import Foundation
package import GRDB

/// A job in the queue: its spec (the `deckhand.server.v1.Job` message,
/// serialized) and the columns the queue and the listings need.
package struct JobRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  package static let databaseTableName = "job"
  package var id: String
  /// The serialized Job as queued (operation, target, options).
  package var spec: Data
  package var singletonId: String
  /// Node id (or "" for none).
  package var targetRunner: String
  package var targetLabels: [String: String]
  package var project: String
  /// `Deckhand_Server_V1_JobState` raw value.
  package var state: Int
  package var runnerId: String
  package var queuedMs: Int64
  package var assignedMs: Int64
  package var ackedMs: Int64
  package var completeMs: Int64
  /// Absolute; 0: never.
  package var expiresMs: Int64
  package var heartbeatMs: Int64
  package var exitCode: Int
  package var error: String
  package var cancelRequested: Bool
  package var forceCancel: Bool
  package var resultCode: Int64
  package var results: [String]
  /// The last output sequence number stored.
  package var outputSequence: Int64
}

/// One stored output event of a job.
package struct JobOutputRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  package static let databaseTableName = "jobOutput"
  package var jobId: String
  package var sequence: Int64
  /// `OutputEvent.Kind` raw value.
  package var kind: Int
  package var data: Data
  package var timestampMs: Int64
}

/// A config variable.
package struct ConfigRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  package static let databaseTableName = "configVariable"
  /// `ConfigVariable.Scope` raw value.
  package var scope: Int
  package var target: String
  package var name: String
  package var value: String
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

/// Where jobs, their output and config variables are kept: the SQLite
/// store fulfils it, and a PostgreSQL store (with `FOR UPDATE SKIP
/// LOCKED` for claiming) will.
package protocol JobStore: Sendable {
  /// Inserts `job`; a still-QUEUED job with the same singleton id ends
  /// (ERROR, replaced). Returns the replaced ids.
  func insert(_ job: JobRecord) throws -> [String]
  func job(id: String) throws -> JobRecord?
  func jobs(states: [Int], runner: String?, since: Int64, limit: Int) throws -> [JobRecord]
  /// The oldest QUEUED job `runner` may take, made WAITING for it; nil if
  /// none.
  func claim(for runner: RunnerIdentity, now: Int64) throws -> JobRecord?
  /// Changes one job in a transaction; nil if it does not exist.
  func update(_ id: String, _ change: (inout JobRecord) throws -> Void) throws -> JobRecord?
  /// Appends output, numbering it after the job's last; returns the new
  /// last sequence number.
  func appendOutput(_ id: String, _ events: [(kind: Int, data: Data, timestampMs: Int64)]) throws -> Int64
  func output(_ id: String, after sequence: Int64, limit: Int) throws -> [JobOutputRecord]
  /// Applies the timeout rules; returns the jobs it changed.
  func expire(now: Int64, ackTimeoutMs: Int64, heartbeatTimeoutMs: Int64) throws -> [JobRecord]
  /// Deletes ended jobs (and their output) that ended before `before`.
  func prune(endedBefore before: Int64) throws -> Int
  func setConfig(_ variables: [ConfigRecord]) throws
  func config(prefix: String) throws -> [ConfigRecord]
}
