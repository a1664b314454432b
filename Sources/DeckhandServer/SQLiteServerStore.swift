package import DeckhandCore
internal import DeckhandRuntime
package import Foundation
internal import GRDB

/// The server's state in SQLite (GRDB, WAL) at `STATE/server.sqlite`.
package final class SQLiteServerStore: ServerStore {
  let database: DatabasePool
  /// The job queue's writes, committed in groups.
  let groupWriter: GroupWriter
  /// Times reads, writes and transactions once metrics are on.
  package let timing = StoreTiming()
  package let path: String

  package init(stateDirectory: String) throws {
    path = "\(stateDirectory)/server.sqlite"
    do {
      try FileManager.default.createDirectory(
        atPath: stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      var configuration = Configuration()
      configuration.busyMode = .timeout(5)
      configuration.prepareDatabase { db in
        // WAL with synchronous NORMAL: a commit survives a crash of the
        // process (what the tests do with SIGKILL); a power loss may lose
        // the last commits, never corrupt the file.
        try db.execute(sql: "PRAGMA synchronous = NORMAL")
      }
      database = try DatabasePool(path: path, configuration: configuration)
      groupWriter = GroupWriter(database: database, directory: stateDirectory)
    } catch {
      throw DeckhandError(
        .configurationInvalid,
        "cannot open the server database \(path): \(error); check --state-dir and its permissions", cause: error)
    }
    try Self.migrate(database, path: path)
  }

  /// Applies the migrations this server has and the database lacks.
  ///
  /// - Throws: ``DeckhandError`` `configurationInvalid` when the database
  ///   has migrations this server does not know (a newer deckhand wrote
  ///   it), naming them.
  private static func migrate(_ database: DatabasePool, path: String) throws {
    let migrator = Self.migrator
    do {
      let unknown = try database.read { db in
        try migrator.appliedIdentifiers(db).subtracting(migrator.migrations)
      }
      guard unknown.isEmpty else {
        throw DeckhandError(
          .configurationInvalid,
          "the server database \(path) has Deckhand schema changes this server does not know "
            + "(\(unknown.sorted().joined(separator: ", "))): a newer deckhand wrote it; run that version, "
            + "or restore a snapshot into an empty state directory")
      }
      try migrator.migrate(database)
    } catch let error as DeckhandError {
      throw error
    } catch {
      throw DeckhandError(
        .configurationInvalid, "cannot migrate the server database \(path): \(error)", cause: error)
    }
  }

  private static var migrator: DatabaseMigrator {
    var migrator = DatabaseMigrator()
    migrator.registerMigration("v1 control plane") { db in
      try db.create(table: "token") { table in
        table.column("id", .text).primaryKey()
        table.column("role", .text).notNull()
        table.column("secretHash", .text).notNull()
        table.column("createdMs", .integer).notNull()
        table.column("expiresMs", .integer).notNull()
        table.column("revoked", .boolean).notNull()
        table.column("description", .text).notNull()
      }
      try db.create(table: "node") { table in
        table.column("id", .text).primaryKey()
        table.column("name", .text).notNull().unique()
        table.column("hostname", .text).notNull()
        table.column("labels", .jsonText).notNull()
        table.column("platform", .text).notNull()
        table.column("agentVersion", .text).notNull()
        table.column("address", .text).notNull()
        table.column("plugins", .jsonText).notNull()
        table.column("status", .text).notNull()
        table.column("lastHeartbeatMs", .integer).notNull()
        table.column("createdMs", .integer).notNull()
        table.column("credentialHash", .text).notNull()
      }
      try db.create(table: "artifact") { table in
        table.column("digest", .text).primaryKey()
        table.column("name", .text).notNull()
        table.column("version", .text).notNull()
        table.column("platform", .text).notNull()
        table.column("size", .integer).notNull()
        table.column("createdMs", .integer).notNull()
      }
      try db.create(table: "deployment") { table in
        table.column("id", .text).primaryKey()
        table.column("plugin", .text).notNull().indexed()
        table.column("version", .text).notNull()
        table.column("artifactDigest", .text).notNull()
        table.column("artifactSize", .integer).notNull()
        table.column("selector", .jsonText).notNull()
        table.column("configJSON", .text).notNull()
        table.column("maxFailures", .integer).notNull()
        table.column("state", .text).notNull()
        table.column("createdMs", .integer).notNull()
      }
      try db.create(table: "task") { table in
        table.column("id", .text).primaryKey()
        table.column("deploymentId", .text).notNull().indexed()
        table.column("nodeId", .text).notNull().indexed()
        table.column("plugin", .text).notNull()
        table.column("version", .text).notNull()
        table.column("artifactDigest", .text).notNull()
        table.column("artifactSize", .integer).notNull()
        table.column("configJSON", .text).notNull()
        table.column("state", .integer).notNull()
        table.column("message", .text).notNull()
        table.column("updatedMs", .integer).notNull()
        table.column("active", .boolean).notNull()
      }
    }
    registerJobMigrations(&migrator)
    // Node identity belongs to the operator: a token grants labels, an
    // agent's own are kept apart. Nodes that joined before keep the labels
    // they had (accepted then); their agents' reports go to agentLabels.
    migrator.registerMigration("v3 node identity") { db in
      try db.alter(table: "token") { table in
        table.add(column: "labels", .jsonText).notNull().defaults(to: "{}")
        table.add(column: "allowedLabelKeys", .jsonText).notNull().defaults(to: "[]")
      }
      try db.alter(table: "node") { table in
        table.add(column: "agentLabels", .jsonText).notNull().defaults(to: "{}")
        table.add(column: "joinTokenId", .text).notNull().defaults(to: "")
      }
    }
    migrator.registerMigration("v4 node availability") { db in
      try db.alter(table: "node") { table in
        table.add(column: "availability", .text).notNull().defaults(to: NodeAvailability.active.rawValue)
      }
    }
    // A removed node leaves a tombstone, so its agent learns why its
    // credential stopped working.
    migrator.registerMigration("v5 removed nodes") { db in
      try db.create(table: "removedNode") { table in
        table.column("id", .text).primaryKey()
        table.column("name", .text).notNull()
        table.column("removedMs", .integer).notNull()
      }
    }
    // Job output is capped per job: the bytes stored so far.
    migrator.registerMigration("v6 job output bytes") { db in
      try db.alter(table: "job") { table in
        table.add(column: "outputBytes", .integer).notNull().defaults(to: 0)
      }
    }
    // The CA lives in the store (so a snapshot carries it); a server
    // that kept it in STATE/tls imports it at start.
    migrator.registerMigration("v7 server secrets") { db in
      try db.create(table: "serverSecret") { table in
        table.column("name", .text).primaryKey()
        table.column("value", .text).notNull()
      }
    }
    // The servers of this store, for agents' lists (one, with SQLite).
    migrator.registerMigration("v8 replicas") { db in
      try db.create(table: "replica") { table in
        table.column("id", .text).primaryKey()
        table.column("address", .text).notNull()
        table.column("startedMs", .integer).notNull()
        table.column("seenMs", .integer).notNull()
      }
    }
    // Rollouts after SwarmKit's update config.
    migrator.registerMigration("v9 rollout settings") { db in
      try db.alter(table: "deployment") { table in
        table.add(column: "parallelism", .integer).notNull().defaults(to: 1)
        table.add(column: "delayMs", .integer).notNull().defaults(to: 0)
        table.add(column: "failureAction", .text).notNull().defaults(to: "pause")
        table.add(column: "monitorMs", .integer).notNull().defaults(to: 0)
        table.add(column: "previousId", .text).notNull().defaults(to: "")
      }
    }
    // What each node's plugins use, as its heartbeats last said.
    migrator.registerMigration("v10 node usage") { db in
      try db.create(table: "nodeUsage") { table in
        table.column("nodeId", .text).primaryKey()
        table.column("usage", .text).notNull()
        table.column("reportedMs", .integer).notNull()
      }
    }
    // The fleet's events (`deckhand events`).
    migrator.registerMigration("v11 fleet events") { db in
      try db.create(table: "fleetEvent") { table in
        table.autoIncrementedPrimaryKey("sequence")
        table.column("atMs", .integer).notNull().indexed()
        table.column("kind", .text).notNull()
        table.column("nodeId", .text).notNull()
        table.column("nodeName", .text).notNull()
        table.column("plugin", .text).notNull()
        table.column("subject", .text).notNull()
        table.column("message", .text).notNull()
      }
    }
    // Traces (issue 18): a deployment keeps the trace that made it, and its
    // tasks carry it to the agents.
    migrator.registerMigration("v12 trace context") { db in
      try db.alter(table: "deployment") { table in
        table.add(column: "traceContext", .jsonText).notNull().defaults(to: "{}")
      }
      try db.alter(table: "task") { table in
        table.add(column: "traceContext", .jsonText).notNull().defaults(to: "{}")
      }
    }
    return migrator
  }

  /// Tokens grant and revoke access: written durably.
  package func save(_ token: TokenRecord) async throws { try await durableWrite { try token.save($0) } }

  /// A write; a full (or read-only, or failing) disk is said as
  /// ``StorageFailure`` naming the state directory.
  func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
    do { return try await timing.measure(.write) { try await database.write(body) } } catch {
      throw StorageFailure.describe(error, directory: directory)
    }
  }

  /// A write committed with others that arrive meanwhile (``GroupWriter``).
  func groupedWrite<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
    try await timing.measure(.write) { try await groupWriter.write(body) }
  }

  /// A read, on one of the pool's reader connections.
  func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
    try await timing.measure(.read) { try await database.read(body) }
  }

  /// The state directory, for errors.
  var directory: String { String(path.dropLast("/server.sqlite".count)) }

  /// Runs `body` in a transaction that is on disk when this returns: with
  /// `synchronous = FULL` for this one commit, SQLite syncs the WAL before
  /// the commit completes, so an acknowledged revocation survives a power
  /// loss, not only a crash of the process. Other writes keep NORMAL (the
  /// WAL synced at checkpoints), which is what makes the queue fast.
  /// Failures are said as ``write(_:)``'s are.
  func durableWrite<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
    do {
      return try await database.writeWithoutTransaction { db in
        try db.execute(sql: "PRAGMA synchronous = FULL")
        defer { try? db.execute(sql: "PRAGMA synchronous = NORMAL") }
        var result: T?
        try db.inTransaction {
          result = try body(db)
          return .commit
        }
        return result!
      }
    } catch {
      throw StorageFailure.describe(error, directory: directory)
    }
  }

  package func token(id: String) async throws -> TokenRecord? {
    // Every operator call reads its token: a statement prepared once.
    try await read {
      try TokenRecord.fetchOne($0.cachedStatement(sql: "SELECT * FROM token WHERE id = ?"), arguments: [id])
    }
  }
  package func tokens() async throws -> [TokenRecord] {
    try await read { try TokenRecord.order(Column("createdMs"), Column("id")).fetchAll($0) }
  }

  package func save(_ node: NodeRecord) async throws {
    do { try await write { try node.save($0) } } catch let error as DatabaseError
      where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE
    {
      throw DeckhandError(.alreadyExists, "node name \(node.name) is taken", cause: error)
    }
  }
  package func node(id: String) async throws -> NodeRecord? { try await read { try NodeRecord.fetchOne($0, key: id) } }
  package func node(named name: String) async throws -> NodeRecord? {
    try await read { try NodeRecord.filter(Column("name") == name).fetchOne($0) }
  }
  package func nodes() async throws -> [NodeRecord] {
    try await read { try NodeRecord.order(Column("name")).fetchAll($0) }
  }

  package func setNodeStatus(_ changes: [NodeLiveness.StatusChange]) async throws {
    guard !changes.isEmpty else { return }
    try await write { db in
      for change in changes {
        if let heartbeat = change.lastHeartbeatMs {
          try db.execute(
            sql: "UPDATE node SET status = ?, lastHeartbeatMs = ? WHERE id = ? AND lastHeartbeatMs <= ?",
            arguments: [change.status.rawValue, heartbeat, change.id, heartbeat])
        } else {
          try db.execute(
            sql: "UPDATE node SET status = ? WHERE id = ?", arguments: [change.status.rawValue, change.id])
        }
      }
    }
  }

  package func append(events: [FleetEvent]) async throws {
    guard !events.isEmpty else { return }
    try await groupedWrite { db in
      let statement = try db.cachedStatement(
        sql: """
          INSERT INTO fleetEvent (atMs, kind, nodeId, nodeName, plugin, subject, message)
          VALUES (?, ?, ?, ?, ?, ?, ?)
          """)
      for event in events {
        try statement.execute(arguments: [
          event.atMs, event.kind.rawValue, event.nodeId, event.nodeName, event.plugin, event.subject, event.message,
        ])
      }
    }
  }

  package func events(after sequence: Int64, sinceMs: Int64, node: String?, plugin: String?, limit: Int) async throws
    -> [FleetEvent]
  {
    try await read { db in
      var sql = "SELECT sequence, atMs, kind, nodeId, nodeName, plugin, subject, message FROM fleetEvent"
      sql += " WHERE sequence > ? AND atMs >= ?"
      var arguments: StatementArguments = [sequence, sinceMs]
      if let node, !node.isEmpty {
        sql += " AND (nodeId = ? OR nodeName = ?)"
        arguments += [node, node]
      }
      if let plugin, !plugin.isEmpty {
        sql += " AND plugin = ?"
        arguments += [plugin]
      }
      sql += " ORDER BY sequence DESC LIMIT ?"
      arguments += [max(1, limit)]
      return try Row.fetchAll(db, sql: sql, arguments: arguments).compactMap { row -> FleetEvent? in
        guard let kind = FleetEvent.Kind(rawValue: row[2]) else { return nil }
        return FleetEvent(
          sequence: row[0], atMs: row[1], kind: kind, nodeId: row[3], nodeName: row[4], plugin: row[5],
          subject: row[6], message: row[7])
      }.reversed()
    }
  }

  package func pruneEvents(before beforeMs: Int64) async throws -> Int {
    try await write { db in
      try db.execute(sql: "DELETE FROM fleetEvent WHERE atMs < ?", arguments: [beforeMs])
      return db.changesCount
    }
  }

  package func setPluginUsage(_ usage: [String: [PluginUsage]], reportedMs: Int64) async throws {
    guard !usage.isEmpty else { return }
    let rows = try usage.map { ($0.key, try JSONColumn.encode($0.value, empty: "[]")) }
    try await write { db in
      let statement = try db.cachedStatement(
        sql: """
          INSERT INTO nodeUsage (nodeId, usage, reportedMs) SELECT id, ?, ? FROM node WHERE id = ?
          ON CONFLICT (nodeId) DO UPDATE SET usage = excluded.usage, reportedMs = excluded.reportedMs
          """)
      for (id, text) in rows { try statement.execute(arguments: [text, reportedMs, id]) }
    }
  }

  package func pluginUsage(node id: String) async throws -> (usage: [PluginUsage], reportedMs: Int64)? {
    guard
      let (text, reported) = try await read({ db -> (String, Int64)? in
        guard
          let row = try Row.fetchOne(
            db, sql: "SELECT usage, reportedMs FROM nodeUsage WHERE nodeId = ?", arguments: [id])
        else { return nil }
        return (row[0], row[1])
      })
    else { return nil }
    return (try JSONColumn.decode(text, empty: "[]"), reported)
  }

  package func markStaleNodesDown(heartbeatBeforeMs: Int64) async throws -> [String] {
    try await write { db in
      let ids = try String.fetchAll(
        db, sql: "SELECT id FROM node WHERE status = ? AND lastHeartbeatMs < ?",
        arguments: [NodeStatus.ready.rawValue, heartbeatBeforeMs])
      try db.execute(
        sql: "UPDATE node SET status = ? WHERE status = ? AND lastHeartbeatMs < ?",
        arguments: [NodeStatus.down.rawValue, NodeStatus.ready.rawValue, heartbeatBeforeMs])
      return ids
    }
  }

  package func setAllNodes(status: NodeStatus) async throws {
    try await write { try $0.execute(sql: "UPDATE node SET status = ?", arguments: [status.rawValue]) }
  }

  package func removeNode(id: String, nowMs: Int64) async throws -> NodeRemoval? {
    // A removal revokes the node's credential: durable before answered.
    try await durableWrite { db in
      guard let node = try NodeRecord.fetchOne(db, key: id) else { return nil }
      var retired: [TaskRecord] = []
      for var task in try TaskRecord.filter(Column("nodeId") == id && Column("active") == true).fetchAll(db) {
        task.retire(nodeName: node.name, nowMs: nowMs)
        try task.update(db)
        retired.append(task)
      }
      var released: [JobRecord] = []
      let open = try JobRecord.fetchAll(
        db.cachedStatement(sql: JobRecord.selectSQL + " WHERE runnerId = ? AND state IN (?, ?)"),
        arguments: [id, Self.waiting, Self.running])
      for var job in open where job.lifecycle.release(from: id, nowMs: nowMs) {
        try job.updateRow(db)
        released.append(job)
      }
      _ = try NodeRecord.deleteOne(db, key: id)
      try db.execute(sql: "DELETE FROM nodeUsage WHERE nodeId = ?", arguments: [id])
      try db.execute(
        sql: "INSERT OR REPLACE INTO removedNode (id, name, removedMs) VALUES (?, ?, ?)",
        arguments: [id, node.name, nowMs])
      return NodeRemoval(node: node, retiredTasks: retired, releasedJobs: released)
    }
  }

  package func removedNodes() async throws -> [RemovedNode] {
    try await read { db in
      try Row.fetchAll(db, sql: "SELECT id, name, removedMs FROM removedNode ORDER BY id").map {
        RemovedNode(id: $0[0], name: $0[1], removedMs: $0[2])
      }
    }
  }

  package func save(_ artifact: ArtifactRecord) async throws { try await write { try artifact.save($0) } }
  package func artifact(digest: String) async throws -> ArtifactRecord? {
    try await read { try ArtifactRecord.fetchOne($0, key: digest) }
  }
  package func artifact(name: String, version: String) async throws -> ArtifactRecord? {
    try await read {
      try ArtifactRecord.filter(Column("name") == name && Column("version") == version)
        .order(Column("createdMs").desc, Column("digest")).fetchOne($0)
    }
  }
  package func artifacts() async throws -> [ArtifactRecord] {
    try await read { try ArtifactRecord.order(Column("name"), Column("createdMs"), Column("digest")).fetchAll($0) }
  }

  /// Content files live in `STATE/artifacts`, named by digest.
  var artifactsDirectory: String { "\(directory)/artifacts" }

  package func storeArtifactContent(digest: String, file path: String) async throws {
    let final = "\(artifactsDirectory)/\(digest).tar.gz"
    let directory = artifactsDirectory
    try await BlockingWork.run {
      do {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if FileManager.default.fileExists(atPath: final) {
          try FileManager.default.removeItem(atPath: path)
        } else {
          try FileManager.default.moveItem(atPath: path, toPath: final)
        }
      } catch {
        throw StorageFailure.describe(error, directory: directory)
      }
    }
  }

  package func artifactContent(digest: String, offset: Int64, count: Int) async throws -> Data? {
    let path = "\(artifactsDirectory)/\(digest).tar.gz"
    return try await BlockingWork.run {
      guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
      defer { try? handle.close() }
      try handle.seek(toOffset: UInt64(offset))
      return try handle.read(upToCount: count) ?? Data()
    }
  }

  package func announceReplica(id: String, address: String, nowMs: Int64) async throws {
    try await write { db in
      try db.execute(
        sql: """
          INSERT INTO replica (id, address, startedMs, seenMs) VALUES (?, ?, ?, ?)
          ON CONFLICT (id) DO UPDATE SET address = excluded.address, seenMs = excluded.seenMs
          """, arguments: [id, address, nowMs, nowMs])
      try db.execute(sql: "DELETE FROM replica WHERE seenMs < ?", arguments: [nowMs - 86_400_000])
    }
  }

  package func replicas(seenSinceMs sinceMs: Int64) async throws -> [String] {
    try await read { db in
      try String.fetchAll(
        db, sql: "SELECT address FROM replica WHERE seenMs >= ? ORDER BY startedMs, id", arguments: [sinceMs])
    }
  }

  package func secret(_ name: String) async throws -> String? {
    try await read { try String.fetchOne($0, sql: "SELECT value FROM serverSecret WHERE name = ?", arguments: [name]) }
  }

  package func claimSecret(_ name: String, value: String) async throws -> String {
    try await durableWrite { db in
      try db.execute(sql: "INSERT OR IGNORE INTO serverSecret (name, value) VALUES (?, ?)", arguments: [name, value])
      return try String.fetchOne(db, sql: "SELECT value FROM serverSecret WHERE name = ?", arguments: [name]) ?? value
    }
  }

  package func save(_ deployment: DeploymentRecord) async throws { try await write { try deployment.save($0) } }
  package func deployment(id: String) async throws -> DeploymentRecord? {
    try await read { try DeploymentRecord.fetchOne($0, key: id) }
  }
  package func deployments() async throws -> [DeploymentRecord] {
    try await read { try DeploymentRecord.order(Column("createdMs"), Column("id")).fetchAll($0) }
  }

  package func apply(deployments: [DeploymentRecord], tasks: [TaskRecord]) async throws {
    guard !deployments.isEmpty || !tasks.isEmpty else { return }
    try await write { db in
      for deployment in deployments { try deployment.save(db) }
      for task in tasks { try task.save(db) }
    }
  }

  package func tasks(node: String?, deployment: String?, activeOnly: Bool) async throws -> [TaskRecord] {
    try await read { db in
      var request = TaskRecord.all()
      if let node { request = request.filter(Column("nodeId") == node) }
      if let deployment { request = request.filter(Column("deploymentId") == deployment) }
      if activeOnly { request = request.filter(Column("active") == true) }
      return try request.order(Column("updatedMs"), Column("id")).fetchAll(db)
    }
  }

  /// Group-committed: a rollout to 10,000 nodes brings 10,000 of these
  /// in a few seconds.
  package func updateTasks(_ updates: [TaskUpdate]) async throws -> [TaskRecord] {
    guard !updates.isEmpty else { return [] }
    return try await groupedWrite { db in
      var changed: [TaskRecord] = []
      let now = nowMs()
      let select = try db.cachedStatement(sql: TaskRecord.selectByIdSQL)
      for update in updates {
        guard var task = try TaskRecord.fetchOne(select, arguments: [update.id]), task.apply(update, nowMs: now)
        else { continue }
        try task.update(db)
        changed.append(task)
      }
      return changed
    }
  }
}
