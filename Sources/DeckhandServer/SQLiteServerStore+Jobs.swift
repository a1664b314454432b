internal import DeckhandProtocol
package import Foundation
internal import GRDB

extension SQLiteServerStore: JobStore {
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

  static let queued = Deckhand_Server_V1_JobState.queued.rawValue
  static let waiting = Deckhand_Server_V1_JobState.waiting.rawValue
  static let running = Deckhand_Server_V1_JobState.running.rawValue
  static let success = Deckhand_Server_V1_JobState.success.rawValue
  static let failure = Deckhand_Server_V1_JobState.error.rawValue

  package func insert(_ job: JobRecord) throws -> [String] {
    try database.write { db in
      var replaced: [String] = []
      if !job.singletonId.isEmpty {
        let previous = try JobRecord.filter(
          Column("singletonId") == job.singletonId && Column("state") == Self.queued
        ).fetchAll(db)
        for var old in previous {
          old.state = Self.failure
          old.error = "replaced by job \(job.id) with the same singleton id"
          old.completeMs = job.queuedMs
          try old.update(db)
          replaced.append(old.id)
        }
      }
      try job.insert(db)
      return replaced
    }
  }

  package func job(id: String) throws -> JobRecord? { try database.read { try JobRecord.fetchOne($0, key: id) } }

  package func jobs(states: [Int], runner: String?, since: Int64, limit: Int) throws -> [JobRecord] {
    try database.read { db in
      var request = JobRecord.filter(Column("queuedMs") >= since)
      if !states.isEmpty { request = request.filter(states.contains(Column("state"))) }
      if let runner { request = request.filter(Column("runnerId") == runner) }
      return try request.order(Column("queuedMs").desc).limit(limit > 0 ? limit : 1000).fetchAll(db)
    }
  }

  package func claim(for runner: RunnerIdentity, now: Int64) throws -> JobRecord? {
    // A read first: most wake-ups find nothing for this runner, and a read
    // does not wait for the writer.
    let any = try database.read { db in
      try Bool.fetchOne(
        db, sql: "SELECT EXISTS (SELECT 1 FROM job WHERE state = ? AND (targetRunner = '' OR targetRunner = ?))",
        arguments: [Self.queued, runner.id]) ?? false
    }
    guard any else { return nil }
    return try database.write { db in
      var request = JobRecord.filter(Column("state") == Self.queued)
      if runner.byIdOnly {
        request = request.filter(Column("targetRunner") == runner.id)
      } else {
        request = request.filter(Column("targetRunner") == "" || Column("targetRunner") == runner.id)
      }
      let candidates = try request.order(Column("queuedMs"), Column("id")).limit(64).fetchAll(db)
      guard
        var job = candidates.first(where: { job in job.targetLabels.allSatisfy { runner.labels[$0.key] == $0.value } })
      else { return nil }
      job.state = Self.waiting
      job.runnerId = runner.id
      job.assignedMs = now
      try job.update(db)
      return job
    }
  }

  package func update(_ id: String, _ change: (inout JobRecord) throws -> Void) throws -> JobRecord? {
    try database.write { db in
      guard var job = try JobRecord.fetchOne(db, key: id) else { return nil }
      try change(&job)
      try job.update(db)
      return job
    }
  }

  package func appendOutput(_ id: String, _ events: [(kind: Int, data: Data, timestampMs: Int64)]) throws -> Int64 {
    try database.write { db in
      guard let last = try Int64.fetchOne(db, sql: "SELECT outputSequence FROM job WHERE id = ?", arguments: [id])
      else { return 0 }
      var sequence = last
      for event in events {
        sequence += 1
        try JobOutputRecord(
          jobId: id, sequence: sequence, kind: event.kind, data: event.data, timestampMs: event.timestampMs
        ).insert(db)
      }
      try db.execute(sql: "UPDATE job SET outputSequence = ? WHERE id = ?", arguments: [sequence, id])
      return sequence
    }
  }

  package func output(_ id: String, after sequence: Int64, limit: Int) throws -> [JobOutputRecord] {
    try database.read { db in
      try JobOutputRecord.filter(Column("jobId") == id && Column("sequence") > sequence)
        .order(Column("sequence")).limit(limit).fetchAll(db)
    }
  }

  package func expire(now: Int64, ackTimeoutMs: Int64, heartbeatTimeoutMs: Int64) throws -> [JobRecord] {
    try database.write { db in
      var changed: [JobRecord] = []
      let open = try JobRecord.filter([Self.queued, Self.waiting, Self.running].contains(Column("state"))).fetchAll(db)
      for var job in open {
        if job.state != Self.running, job.expiresMs > 0, job.expiresMs <= now {
          job.state = Self.failure
          job.error = "expired before a runner took it"
          job.completeMs = now
        } else if job.state == Self.waiting, now - job.assignedMs > ackTimeoutMs {
          job.state = Self.queued
          job.runnerId = ""
          job.assignedMs = 0
        } else if job.state == Self.running, now - job.heartbeatMs > heartbeatTimeoutMs {
          job.state = Self.failure
          job.error = "the runner stopped sending heartbeats (none for \(heartbeatTimeoutMs) ms)"
          job.completeMs = now
        } else {
          continue
        }
        try job.update(db)
        changed.append(job)
      }
      return changed
    }
  }

  package func prune(endedBefore before: Int64) throws -> Int {
    try database.write { db in
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

  package func setConfig(_ variables: [ConfigRecord]) throws {
    try database.write { db in
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

  package func config(prefix: String) throws -> [ConfigRecord] {
    try database.read { db in
      try ConfigRecord.filter(sql: "substr(name, 1, length(?)) = ?", arguments: [prefix, prefix])
        .order(Column("scope"), Column("target"), Column("name")).fetchAll(db)
    }
  }
}
