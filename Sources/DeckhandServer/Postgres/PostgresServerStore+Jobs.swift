internal import DeckhandCore
internal import Foundation
internal import Logging
internal import PostgresNIO

extension PostgresServerStore {
  static let jobColumns = """
    id, spec, singleton_id, target_runner, target_labels, project, state, runner_id, queued_ms, assigned_ms, \
    acked_ms, complete_ms, expires_ms, heartbeat_ms, exit_code, error, cancel_requested, force_cancel, \
    result_code, results, output_sequence
    """

  static func job(_ row: PostgresRow) throws -> JobRecord {
    let (
      id, spec, singleton, targetRunner, targetLabels, project, stateNumber, runner, queued, assigned, acked, complete,
      expires, heartbeat, exitCode, error, cancel, force, resultCode, results, sequence
    ) = try row.decode(
      (
        String, Data, String, String, String, String, Int, String, Int64, Int64, Int64, Int64, Int64, Int64, Int,
        String, Bool, Bool, Int64, String, Int64
      ).self)
    guard let state = JobState(rawValue: stateNumber) else {
      throw DeckhandError(.internalError, "job \(id) has an unknown state \(stateNumber) in the store")
    }
    return JobRecord(
      id: id, spec: spec, singletonId: singleton, targetRunner: targetRunner,
      targetLabels: try JSONColumn.decode(targetLabels, empty: "{}"), project: project, queuedMs: queued,
      lifecycle: JobLifecycle(
        state: state, runnerId: runner, assignedMs: assigned, ackedMs: acked, completeMs: complete,
        expiresMs: expires, heartbeatMs: heartbeat, exitCode: exitCode, error: error, cancelRequested: cancel,
        forceCancel: force, resultCode: resultCode, results: try JSONColumn.decode(results, empty: "[]")),
      outputSequence: sequence)
  }

  static func jobs(on connection: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws
    -> [JobRecord]
  {
    var jobs: [JobRecord] = []
    for try await row in try await connection.query(query, logger: logger) { jobs.append(try job(row)) }
    return jobs
  }

  static func insertJob(_ job: JobRecord, on connection: PostgresConnection, logger: Logger) async throws {
    let life = job.lifecycle
    let labels = try JSONColumn.encode(job.targetLabels, empty: "{}")
    let results = try JSONColumn.encode(life.results, empty: "[]")
    try await connection.query(
      """
      INSERT INTO job (\(unescaped: jobColumns)) VALUES (\(job.id), \(job.spec), \(job.singletonId), \
      \(job.targetRunner), \(labels), \(job.project), \(life.state.rawValue), \(life.runnerId), \(job.queuedMs), \
      \(life.assignedMs), \(life.ackedMs), \(life.completeMs), \(life.expiresMs), \(life.heartbeatMs), \
      \(life.exitCode), \(life.error), \(life.cancelRequested), \(life.forceCancel), \(life.resultCode), \
      \(results), \(job.outputSequence))
      """, logger: logger)
  }

  /// Writes the job's lifecycle (what the queue's rules change).
  static func updateJob(_ job: JobRecord, on connection: PostgresConnection, logger: Logger) async throws {
    try await connection.query(lifecycleUpdate(job), logger: logger)
  }

  /// The `UPDATE` that writes `job`'s lifecycle; with `read`, only while
  /// the row's lifecycle is still `read`'s (a compare-and-set on every
  /// lifecycle column).
  static func lifecycleUpdate(_ job: JobRecord, ifStill read: JobRecord? = nil) throws -> PostgresQuery {
    let life = job.lifecycle
    let results = try JSONColumn.encode(life.results, empty: "[]")
    var query: PostgresQuery = """
      UPDATE job SET state = \(life.state.rawValue), runner_id = \(life.runnerId), assigned_ms = \(life.assignedMs), \
      acked_ms = \(life.ackedMs), complete_ms = \(life.completeMs), expires_ms = \(life.expiresMs), \
      heartbeat_ms = \(life.heartbeatMs), exit_code = \(life.exitCode), error = \(life.error), \
      cancel_requested = \(life.cancelRequested), force_cancel = \(life.forceCancel), \
      result_code = \(life.resultCode), results = \(results)
      WHERE id = \(job.id)
      """
    guard let old = read?.lifecycle else { return query }
    query.append(" AND state = ", old.state.rawValue)
    query.append(" AND runner_id = ", old.runnerId)
    query.append(" AND assigned_ms = ", old.assignedMs)
    query.append(" AND acked_ms = ", old.ackedMs)
    query.append(" AND complete_ms = ", old.completeMs)
    query.append(" AND expires_ms = ", old.expiresMs)
    query.append(" AND heartbeat_ms = ", old.heartbeatMs)
    query.append(" AND exit_code = ", old.exitCode)
    query.append(" AND error = ", old.error)
    query.append(" AND cancel_requested = ", old.cancelRequested)
    query.append(" AND force_cancel = ", old.forceCancel)
    query.append(" AND result_code = ", old.resultCode)
    query.append(" AND results = ", try JSONColumn.encode(old.results, empty: "[]"))
    return query
  }

  package func insert(_ job: JobRecord) async throws -> [String] {
    // Without a singleton there is nothing to replace: one statement, no
    // transaction around it (BEGIN and COMMIT are a round trip each).
    if job.singletonId.isEmpty {
      try await onConnection { try await Self.insertJob(job, on: $0, logger: logger) }
      return []
    }
    return try await transaction { connection in
      var replaced: [String] = []
      let previous = try await Self.jobs(
        on: connection,
        "SELECT \(unescaped: Self.jobColumns) FROM job WHERE singleton_id = \(job.singletonId) AND state = \(JobState.queued.rawValue) ORDER BY id FOR UPDATE",
        logger: logger)
      for var old in previous where old.lifecycle.replace(by: job.id, nowMs: job.queuedMs) {
        try await Self.updateJob(old, on: connection, logger: logger)
        replaced.append(old.id)
      }
      try await Self.insertJob(job, on: connection, logger: logger)
      return replaced
    }
  }

  package func job(id: String) async throws -> JobRecord? {
    try await fetch("SELECT \(unescaped: Self.jobColumns) FROM job WHERE id = \(id)", Self.job).first
  }

  package func jobs(states: [Int], runner: String?, since: Int64, limit: Int) async throws -> [JobRecord] {
    var query: PostgresQuery = "SELECT \(unescaped: Self.jobColumns) FROM job WHERE queued_ms >= \(since)"
    if !states.isEmpty {
      query.sql += " AND state = ANY($\(query.binds.count + 1))"
      query.binds.append(states, context: .default)
    }
    if let runner { query.append(" AND runner_id = ", runner) }
    query.sql += " ORDER BY queued_ms DESC, id DESC LIMIT \(limit > 0 ? limit : 1000)"
    return try await fetch(query, Self.job)
  }

  package func jobCounts() async throws -> [Int: Int] {
    var counts: [Int: Int] = [:]
    for (state, count) in try await fetch(
      "SELECT state, COUNT(*) FROM job GROUP BY state",
      { row in
        try row.decode((Int, Int).self)
      })
    {
      counts[state] = count
    }
    return counts
  }

  package func runnerIdentity(id: String, byIdOnly: Bool) async throws -> RunnerIdentity? {
    try await fetch("SELECT name, labels, availability FROM node WHERE id = \(id)") { row in
      let (name, labels, availability) = try row.decode((String, String, String).self)
      guard availability == NodeAvailability.active.rawValue else { return nil as RunnerIdentity? }
      return RunnerIdentity(
        id: id, name: name, labels: try JSONColumn.decode(labels, empty: "{}"), byIdOnly: byIdOnly)
    }.first ?? nil
  }

  /// Takes the oldest job the runner accepts in one statement: the
  /// candidate is chosen and locked with `FOR UPDATE SKIP LOCKED` (claims
  /// on several replicas never wait for each other nor take the same job)
  /// and assigned by the same `UPDATE`. Target labels match by JSON
  /// containment, as ``RunnerIdentity/accepts(_:)`` matches them. Then the
  /// next job the runner would accept, without a lock, so its wake-up is
  /// passed on.
  ///
  /// Measured with `deckhand-bench jobs --store postgres`: choosing in
  /// Swift (a page of candidates, then a transaction per candidate) made
  /// 16 concurrent claimers race for the same head of the queue, most of
  /// their transactions finding it taken.
  package func claim(runner id: String, byIdOnly: Bool, now: Int64) async throws -> JobClaim? {
    guard let runner = try await runnerIdentity(id: id, byIdOnly: byIdOnly) else { return nil }
    var claim = JobClaim(runner: runner)
    let labels = try JSONColumn.encode(runner.labels, empty: "{}")
    // The jobs this runner accepts, as a condition appended to `query`.
    func appendAccepted(to query: inout PostgresQuery) {
      query.sql += " state = \(JobState.queued.rawValue)"
      if runner.byIdOnly {
        query.append(" AND target_runner = ", runner.id)
      } else {
        query.append(" AND target_runner IN ('', ", runner.id)
        query.sql += ")"
      }
      query.append(" AND target_labels::jsonb <@ ", labels)
      query.sql += "::jsonb"
    }
    var take: PostgresQuery = """
      UPDATE job SET state = \(JobState.waiting.rawValue), runner_id = \(runner.id), assigned_ms = \(now) \
      WHERE id = (SELECT id FROM job WHERE
      """
    appendAccepted(to: &take)
    take.sql += " ORDER BY queued_ms, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING \(Self.jobColumns)"
    claim.job = try await fetch(take, Self.job).first
    guard claim.job != nil else { return claim }
    var next: PostgresQuery = "SELECT target_runner, target_labels FROM job WHERE"
    appendAccepted(to: &next)
    next.sql += " ORDER BY queued_ms, id LIMIT 1"
    claim.next = try await fetch(next) { row in
      let (targetRunner, labels) = try row.decode((String, String).self)
      return RunnerWaiters.Target(runner: targetRunner, labels: try JSONColumn.decode(labels, empty: "{}"))
    }.first
    return claim
  }

  /// Reads the job, changes it, and writes its lifecycle only if no one
  /// changed that meanwhile (compare-and-set on every lifecycle column):
  /// two round trips without a transaction, rather than four with one
  /// (BEGIN, SELECT … FOR UPDATE, UPDATE, COMMIT). After a few lost races
  /// it takes the row lock instead.
  package func update(_ id: String, _ change: @escaping @Sendable (inout JobRecord) throws -> Void) async throws
    -> JobRecord?
  {
    for _ in 0..<3 {
      guard let read = try await job(id: id) else { return nil }
      var job = read
      try change(&job)
      if job.lifecycle == read.lifecycle { return job }
      var compareAndSet = try Self.lifecycleUpdate(job, ifStill: read)
      compareAndSet.sql += " RETURNING id"
      if try await !fetch(compareAndSet, { try $0.decode(String.self) }).isEmpty { return job }
    }
    return try await transaction { connection in
      let rows = try await Self.jobs(
        on: connection, "SELECT \(unescaped: Self.jobColumns) FROM job WHERE id = \(id) FOR UPDATE", logger: logger)
      guard var job = rows.first else { return nil }
      try change(&job)
      try await Self.updateJob(job, on: connection, logger: logger)
      return job
    }
  }

  package func appendOutput(_ id: String, _ events: [JobOutputEvent], limit: Int64) async throws -> Int64 {
    try await transaction { connection in
      var found: (Int64, Int64)?
      for try await row in try await connection.query(
        "SELECT output_sequence, output_bytes FROM job WHERE id = \(id) FOR UPDATE", logger: logger)
      {
        found = try row.decode((Int64, Int64).self)
      }
      guard let (sequence, bytes) = found else { return 0 }
      var cut = OutputCut(sequence: sequence, bytes: bytes, limit: limit)
      let stored = cut.append(events)
      if !stored.isEmpty {
        var insert = PostgresQuery(
          unsafeSQL: "INSERT INTO job_output (job_id, sequence, kind, data, timestamp_ms) VALUES ")
        insert.binds.append(id, context: .default)
        for (index, event) in stored.enumerated() {
          let first = insert.binds.count + 1
          insert.sql += "\(index == 0 ? "" : ", ")($1, $\(first), $\(first + 1), $\(first + 2), $\(first + 3))"
          insert.binds.append(event.sequence, context: .default)
          insert.binds.append(Int64(event.kind), context: .default)
          try insert.binds.append(event.data, context: .default)
          insert.binds.append(event.timestampMs, context: .default)
        }
        try await connection.query(insert, logger: logger)
      }
      try await connection.query(
        "UPDATE job SET output_sequence = \(cut.sequence), output_bytes = \(cut.bytes) WHERE id = \(id)",
        logger: logger)
      return cut.sequence
    }
  }

  package func output(_ id: String, after sequence: Int64, limit: Int) async throws -> [JobOutputRecord] {
    try await fetch(
      """
      SELECT kind, data, timestamp_ms, sequence FROM job_output WHERE job_id = \(id) AND sequence > \(sequence) \
      ORDER BY sequence LIMIT \(limit)
      """
    ) { row in
      let (kind, data, timestamp, number) = try row.decode((Int, Data, Int64, Int64).self)
      return JobOutputRecord(jobId: id, sequence: number, kind: kind, data: data, timestampMs: timestamp)
    }
  }

  package func stop(_ id: String, error: String, nowMs: Int64) async throws -> Bool {
    do {
      let stopped = try await update(id) { job in
        guard job.lifecycle.stop(error: error, nowMs: nowMs) else { throw Unchanged() }
      }
      return stopped != nil
    } catch is Unchanged {
      return false
    }
  }

  /// Thrown by a change that changes nothing: the transaction rolls back.
  private struct Unchanged: Error {}

  package func restartHeartbeats(nowMs: Int64) async throws {
    try await execute("UPDATE job SET heartbeat_ms = \(nowMs) WHERE state = \(JobState.running.rawValue)")
  }

  package func expire(now: Int64, ackTimeoutMs: Int64, heartbeatTimeoutMs: Int64) async throws -> [JobRecord] {
    let (queued, waiting, running) = (JobState.queued.rawValue, JobState.waiting.rawValue, JobState.running.rawValue)
    return try await transaction { connection in
      // Only the jobs a rule may apply to are read (this filter mirrors
      // JobLifecycle.applyTimeouts, which decides); rows another replica
      // is changing are left for the next sweep.
      let open = try await Self.jobs(
        on: connection,
        """
        SELECT \(unescaped: Self.jobColumns) FROM job
        WHERE (state IN (\(queued), \(waiting)) AND expires_ms > 0 AND expires_ms <= \(now))
        OR (state = \(waiting) AND assigned_ms < \(now - ackTimeoutMs))
        OR (state = \(running) AND heartbeat_ms < \(now - heartbeatTimeoutMs))
        ORDER BY id FOR UPDATE SKIP LOCKED
        """, logger: logger)
      var changed: [JobRecord] = []
      for var job in open {
        guard
          job.lifecycle.applyTimeouts(nowMs: now, ackTimeoutMs: ackTimeoutMs, heartbeatTimeoutMs: heartbeatTimeoutMs)
        else { continue }
        try await Self.updateJob(job, on: connection, logger: logger)
        changed.append(job)
      }
      return changed
    }
  }

  package func prune(endedBefore before: Int64) async throws -> Int {
    try await transaction { connection in
      var ids: [String] = []
      for try await row in try await connection.query(
        """
        DELETE FROM job WHERE state IN (\(JobState.success.rawValue), \(JobState.error.rawValue)) \
        AND complete_ms < \(before) RETURNING id
        """, logger: logger)
      {
        ids.append(try row.decode(String.self))
      }
      if !ids.isEmpty {
        try await connection.query("DELETE FROM job_output WHERE job_id = ANY(\(ids))", logger: logger)
      }
      return ids.count
    }
  }

  package func setConfig(_ variables: [ConfigRecord]) async throws {
    try await transaction { connection in
      for variable in variables {
        if variable.value.isEmpty {
          try await connection.query(
            """
            DELETE FROM config_variable WHERE scope = \(variable.scope) AND target = \(variable.target) \
            AND name = \(variable.name)
            """, logger: logger)
        } else {
          try await connection.query(
            """
            INSERT INTO config_variable (scope, target, name, value) VALUES (\(variable.scope), \(variable.target), \
            \(variable.name), \(variable.value)) ON CONFLICT (scope, target, name) DO UPDATE SET value = excluded.value
            """, logger: logger)
        }
      }
    }
  }

  package func config(prefix: String) async throws -> [ConfigRecord] {
    try await fetch(
      """
      SELECT scope, target, name, value FROM config_variable WHERE substr(name, 1, length(\(prefix))) = \(prefix) \
      ORDER BY scope, target, name
      """
    ) { row in
      let (scope, target, name, value) = try row.decode((Int, String, String, String).self)
      return ConfigRecord(scope: scope, target: target, name: name, value: value)
    }
  }
}
