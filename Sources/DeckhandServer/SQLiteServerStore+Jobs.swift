package import DeckhandCore
internal import DeckhandProtocol
package import Foundation
internal import GRDB

extension SQLiteServerStore {
  static func registerJobMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v2 jobs") { db in
      try db.create(table: "job") { table in
        table.column("id", .text).primaryKey()
        table.column("spec", .blob).notNull()
        table.column("singletonId", .text).notNull()
        table.column("targetRunner", .text).notNull()
        table.column("targetLabels", .jsonText).notNull()
        table.column("project", .text).notNull()
        table.column("state", .integer).notNull()
        table.column("runnerId", .text).notNull()
        table.column("queuedMs", .integer).notNull()
        table.column("assignedMs", .integer).notNull()
        table.column("ackedMs", .integer).notNull()
        table.column("completeMs", .integer).notNull()
        table.column("expiresMs", .integer).notNull()
        table.column("heartbeatMs", .integer).notNull()
        table.column("exitCode", .integer).notNull()
        table.column("error", .text).notNull()
        table.column("cancelRequested", .boolean).notNull()
        table.column("forceCancel", .boolean).notNull()
        table.column("resultCode", .integer).notNull()
        table.column("results", .jsonText).notNull()
        table.column("outputSequence", .integer).notNull()
      }
      try db.create(index: "job_state_queued", on: "job", columns: ["state", "queuedMs"])
      try db.create(table: "jobOutput") { table in
        table.column("jobId", .text).notNull()
        table.column("sequence", .integer).notNull()
        table.column("kind", .integer).notNull()
        table.column("data", .blob).notNull()
        table.column("timestampMs", .integer).notNull()
        table.primaryKey(["jobId", "sequence"])
      }
      try db.create(table: "configVariable") { table in
        table.column("scope", .integer).notNull()
        table.column("target", .text).notNull()
        table.column("name", .text).notNull()
        table.column("value", .text).notNull()
        table.primaryKey(["scope", "target", "name"])
      }
    }
  }

  static let queued = JobState.queued.rawValue
  static let waiting = JobState.waiting.rawValue
  static let running = JobState.running.rawValue
  static let success = JobState.success.rawValue
  static let failure = JobState.error.rawValue

  package func insert(_ job: JobRecord) async throws -> [String] {
    try await groupedWrite { db in
      var replaced: [String] = []
      if !job.singletonId.isEmpty {
        let previous = try JobRecord.filter(
          Column("singletonId") == job.singletonId && Column("state") == Self.queued
        ).fetchAll(db)
        for var old in previous where old.lifecycle.replace(by: job.id, nowMs: job.queuedMs) {
          try old.updateRow(db)
          replaced.append(old.id)
        }
      }
      try job.insertRow(db)
      return replaced
    }
  }

  package func job(id: String) async throws -> JobRecord? { try await read { try JobRecord.fetch($0, id: id) } }

  package func jobs(states: [Int], runner: String?, since: Int64, limit: Int) async throws -> [JobRecord] {
    try await read { db in
      var request = JobRecord.filter(Column("queuedMs") >= since)
      if !states.isEmpty { request = request.filter(states.contains(Column("state"))) }
      if let runner { request = request.filter(Column("runnerId") == runner) }
      return try request.order(Column("queuedMs").desc, Column("id").desc).limit(limit > 0 ? limit : 1000).fetchAll(db)
    }
  }

  package func jobCounts() async throws -> [Int: Int] {
    try await read { db in
      var counts: [Int: Int] = [:]
      for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) FROM job GROUP BY state") {
        counts[row[0]] = row[1]
      }
      return counts
    }
  }

  package func runnerIdentity(id: String, byIdOnly: Bool) async throws -> RunnerIdentity? {
    try await read { try Self.runnerIdentity($0, id: id, byIdOnly: byIdOnly) }
  }

  /// The runner `id` as a claim sees it; nil when it is unknown or
  /// drained (a drained node takes no new jobs).
  static func runnerIdentity(_ db: Database, id: String, byIdOnly: Bool) throws -> RunnerIdentity? {
    let statement = try db.cachedStatement(sql: "SELECT name, labels, availability FROM node WHERE id = ?")
    guard let row = try Row.fetchOne(statement, arguments: [id]) else { return nil }
    guard row[2] as String == NodeAvailability.active.rawValue else { return nil }
    let labels: [String: String] = try JSONColumn.decode(row[1], empty: "{}")
    return RunnerIdentity(id: id, name: row[0], labels: labels, byIdOnly: byIdOnly)
  }

  package func claim(runner id: String, byIdOnly: Bool, now: Int64) async throws -> JobClaim? {
    // One transaction reads the runner (its labels may have changed with
    // its last session), the candidates by id and labels only, and the
    // full row of the one it takes.
    try await groupedWrite { db in
      guard let runner = try Self.runnerIdentity(db, id: id, byIdOnly: byIdOnly) else { return nil }
      let sql =
        runner.byIdOnly
        ? "SELECT id, targetRunner, targetLabels FROM job WHERE state = ? AND targetRunner = ? "
          + "ORDER BY queuedMs, id"
        : "SELECT id, targetRunner, targetLabels FROM job WHERE state = ? AND (targetRunner = '' OR targetRunner = ?) "
          + "ORDER BY queuedMs, id"
      let rows = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: [Self.queued, runner.id])
      var claim = JobClaim(runner: runner)
      while let row = try rows.next() {
        let target = RunnerWaiters.Target(runner: row[1], labels: try JSONColumn.decode(row[2], empty: "{}"))
        guard runner.accepts(target) else { continue }
        if claim.job != nil {
          claim.next = target
          break
        }
        let jobId: String = row[0]
        guard var job = try JobRecord.fetch(db, id: jobId), job.lifecycle.assign(to: runner.id, nowMs: now) else {
          continue
        }
        // Only the columns the assignment changes (every job is claimed
        // once; the whole row would be written for three values).
        try db.cachedStatement(sql: "UPDATE job SET state = ?, runnerId = ?, assignedMs = ? WHERE id = ?")
          .execute(arguments: [job.state.rawValue, job.runnerId, job.assignedMs, jobId])
        claim.job = job
      }
      return claim
    }
  }

  package func update(_ id: String, _ change: @escaping @Sendable (inout JobRecord) throws -> Void) async throws
    -> JobRecord?
  {
    try await groupedWrite { db in
      guard var job = try JobRecord.fetch(db, id: id) else { return nil }
      try change(&job)
      try job.updateRow(db)
      return job
    }
  }

  package func appendOutput(
    _ id: String, _ events: [JobOutputEvent], limit: Int64
  ) async throws -> Int64 {
    try await groupedWrite { db in
      let select = try db.cachedStatement(sql: "SELECT outputSequence, outputBytes FROM job WHERE id = ?")
      guard let row = try Row.fetchOne(select, arguments: [id]) else { return 0 }
      var cut = OutputCut(sequence: row[0], bytes: row[1], limit: limit)
      let insert = try db.cachedStatement(
        sql: "INSERT INTO jobOutput (jobId, sequence, kind, data, timestampMs) VALUES (?, ?, ?, ?, ?)")
      for stored in cut.append(events) {
        try insert.execute(arguments: [id, stored.sequence, stored.kind, stored.data, stored.timestampMs])
      }
      let (sequence, bytes) = (cut.sequence, cut.bytes)
      try db.cachedStatement(sql: "UPDATE job SET outputSequence = ?, outputBytes = ? WHERE id = ?")
        .execute(arguments: [sequence, bytes, id])
      return sequence
    }
  }

  package func output(_ id: String, after sequence: Int64, limit: Int) async throws -> [JobOutputRecord] {
    try await read { db in
      let statement = try db.cachedStatement(
        sql: "SELECT kind, data, timestampMs, sequence FROM jobOutput WHERE jobId = ? AND sequence > ? "
          + "ORDER BY sequence LIMIT ?")
      return try Row.fetchAll(statement, arguments: [id, sequence, limit]).map { row in
        JobOutputRecord(jobId: id, sequence: row[3], kind: row[0], data: row[1], timestampMs: row[2])
      }
    }
  }

  package func stop(_ id: String, error: String, nowMs: Int64) async throws -> Bool {
    try await write { db in
      guard var job = try JobRecord.fetch(db, id: id), job.lifecycle.stop(error: error, nowMs: nowMs) else {
        return false
      }
      try job.updateRow(db)
      return true
    }
  }

  package func restartHeartbeats(nowMs: Int64) async throws {
    try await write { db in
      try db.execute(sql: "UPDATE job SET heartbeatMs = ? WHERE state = ?", arguments: [nowMs, Self.running])
    }
  }

  package func expire(now: Int64, ackTimeoutMs: Int64, heartbeatTimeoutMs: Int64) async throws -> [JobRecord] {
    try await write { db in
      var changed: [JobRecord] = []
      // Only the jobs a rule may apply to are read (this filter mirrors
      // JobLifecycle.applyTimeouts, which decides).
      let open = try JobRecord.fetchAll(
        db.cachedStatement(
          sql: JobRecord.selectSQL + """
             WHERE (state IN (?, ?) AND expiresMs > 0 AND expiresMs <= ?)
             OR (state = ? AND assignedMs < ?)
             OR (state = ? AND heartbeatMs < ?)
            """),
        arguments: [
          Self.queued, Self.waiting, now, Self.waiting, now - ackTimeoutMs, Self.running, now - heartbeatTimeoutMs,
        ])
      for var job in open {
        guard
          job.lifecycle.applyTimeouts(nowMs: now, ackTimeoutMs: ackTimeoutMs, heartbeatTimeoutMs: heartbeatTimeoutMs)
        else { continue }
        try job.updateRow(db)
        changed.append(job)
      }
      return changed
    }
  }

  package func prune(endedBefore before: Int64) async throws -> Int {
    try await write { db in
      let ids = try String.fetchAll(
        db, sql: "SELECT id FROM job WHERE state IN (?, ?) AND completeMs < ?",
        arguments: [Self.success, Self.failure, before])
      for id in ids {
        try db.execute(sql: "DELETE FROM jobOutput WHERE jobId = ?", arguments: [id])
        try db.execute(sql: "DELETE FROM job WHERE id = ?", arguments: [id])
      }
      return ids.count
    }
  }

  package func setConfig(_ variables: [ConfigRecord]) async throws {
    try await write { db in
      for variable in variables {
        if variable.value.isEmpty {
          try db.execute(
            sql: "DELETE FROM configVariable WHERE scope = ? AND target = ? AND name = ?",
            arguments: [variable.scope, variable.target, variable.name])
        } else {
          try variable.save(db)
        }
      }
    }
  }

  package func config(prefix: String) async throws -> [ConfigRecord] {
    try await read { db in
      try ConfigRecord.filter(sql: "substr(name, 1, length(?)) = ?", arguments: [prefix, prefix])
        .order(Column("scope"), Column("target"), Column("name")).fetchAll(db)
    }
  }
}
