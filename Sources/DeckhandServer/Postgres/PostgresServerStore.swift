package import DeckhandCore
internal import DeckhandRuntime
package import Foundation
package import Logging
internal import NIOPosix
internal import NIOSSL
internal import PostgresNIO

/// The server's state in PostgreSQL (postgres-nio's pooled client), shared
/// by any number of server replicas (`--database-url`).
///
/// Rows are read by column position into the same records the SQLite store
/// reads (``ServerStore``); JSON columns are text, as in SQLite, so a
/// snapshot moves between the two unchanged. The client's connections live
/// in ``run()``, which the server runs as a child of its own `run()`.
package final class PostgresServerStore: ServerStore {
  let client: PostgresClient
  /// The same settings for one connection of its own (``prepare()``'s
  /// first check).
  let connectionConfiguration: PostgresConnection.Configuration
  let logger: Logger
  /// Times reads, writes and transactions once metrics are on.
  package let timing = StoreTiming()
  /// The database, for errors (its URL without the password).
  let name: String

  /// A store for `url`. Nothing connects until ``run()`` runs;
  /// ``prepare()`` then migrates the schema.
  ///
  /// - Throws: ``DeckhandError`` `configurationInvalid` when the TLS
  ///   settings cannot be used (an unreadable `sslrootcert`).
  package init(url: DatabaseURL, logger: Logger) throws {
    self.logger = logger
    name = url.description
    var configuration: PostgresClient.Configuration
    switch url.address {
    case .tcp(let host, let port):
      let tls = try Self.tls(url)
      configuration = PostgresClient.Configuration(
        host: host, port: port, username: url.user, password: url.password, database: url.database,
        tls: tls.map { $0.required ? .require($0.configuration) : .prefer($0.configuration) } ?? .disable)
      let context = try tls.map { try NIOSSLContext(configuration: $0.configuration) }
      connectionConfiguration = PostgresConnection.Configuration(
        host: host, port: port, username: url.user, password: url.password, database: url.database,
        tls: context.map { tls?.required == true ? .require($0) : .prefer($0) } ?? .disable)
    case .unixSocket(let directory, let port):
      configuration = PostgresClient.Configuration(
        unixSocketPath: "\(directory)/.s.PGSQL.\(port)", username: url.user, password: url.password,
        database: url.database)
      connectionConfiguration = PostgresConnection.Configuration(
        unixSocketPath: "\(directory)/.s.PGSQL.\(port)", username: url.user, password: url.password,
        database: url.database)
    }
    configuration.options.maximumConnections = 16
    configuration.options.minimumConnections = 2
    configuration.options.connectTimeout = .seconds(10)
    // The job queue's claim (`WHERE state = queued AND … ORDER BY
    // queued_ms, id LIMIT 1 FOR UPDATE SKIP LOCKED`) must walk the
    // (state, queued_ms, id) index and stop at the first match. While the
    // table's statistics lag a fast-growing queue, the planner estimates a
    // few dozen queued rows and reads them all through a bitmap scan and a
    // sort instead: 7.5 ms a claim at 4,000 queued jobs, against 0.13 ms
    // through the index. No query of this store needs a bitmap scan.
    configuration.options.additionalStartupParameters = [("options", "-c enable_bitmapscan=off")]
    client = PostgresClient(configuration: configuration, backgroundLogger: logger)
  }

  /// TLS as the URL's `sslmode` asks. Unlike libpq's, `require` checks the
  /// server's certificate and name (against the system's CAs, or
  /// `sslrootcert`): a server that runs as root should not send its
  /// fleet's credentials to whoever answers. `prefer` is libpq's (TLS when
  /// offered, unchecked); `disable` never uses TLS (nil).
  ///
  /// A host given as an IP address is checked against the certificate's
  /// IP addresses (NIOSSL checks the address it connected to); a name,
  /// against its names.
  static func tls(_ url: DatabaseURL) throws -> (configuration: TLSConfiguration, required: Bool)? {
    var tls = TLSConfiguration.makeClientConfiguration()
    if let path = url.rootCertificatePath {
      do {
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path))
      } catch {
        throw DeckhandError(
          .configurationInvalid, "--database-url: cannot read sslrootcert \(path): \(error)", cause: error)
      }
    }
    switch url.tls {
    case .disable:
      return nil
    case .prefer:
      tls.certificateVerification = .none
      return (tls, false)
    case .verifyCA:
      tls.certificateVerification = .noHostnameVerification
      return (tls, true)
    case .require, .verifyFull:
      tls.certificateVerification = .fullVerification
      return (tls, true)
    }
  }

  /// Runs the connection pool until the task is cancelled.
  package func run() async {
    await client.run()
  }

  /// Migrates the schema to this server's version (once ``run()`` runs).
  ///
  /// - Throws: ``DeckhandError`` when the database cannot be reached or
  ///   its schema is newer than this server's.
  package func prepare() async throws {
    do {
      // One connection first: the pool retries failed connections with
      // backoff (a wrong password or certificate surfaced after about a
      // minute, as "circuit breaker tripped"); this says why at once.
      let connection = try await PostgresConnection.connect(
        on: MultiThreadedEventLoopGroup.singleton.any(), configuration: connectionConfiguration, id: 0,
        logger: logger
      ).get()
      try? await connection.close()
      try await PostgresSchema.migrate(client, database: name, logger: logger)
    } catch {
      throw PostgresFailure.describe(error, database: name)
    }
  }

  /// Runs `body` with a store whose pool runs for the call, prepared.
  package static func with<Result: Sendable>(
    url: DatabaseURL, logger: Logger, _ body: (PostgresServerStore) async throws -> Result
  ) async throws -> Result {
    let store = try PostgresServerStore(url: url, logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await store.run() }
      defer { group.cancelAll() }
      try await store.prepare()
      return try await body(store)
    }
  }

  /// Whether this store's connections use TLS (as PostgreSQL sees them).
  package func usesTLS() async throws -> Bool {
    try await fetch("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") { try $0.decode(Bool.self) }.first
      ?? false
  }

  // MARK: Statements

  /// Runs `query`, decoding each row with `row`.
  func fetch<Record>(_ query: PostgresQuery, _ row: (PostgresRow) throws -> Record) async throws -> [Record] {
    do {
      return try await timing.measure(.statement) {
        var records: [Record] = []
        for try await next in try await client.query(query, logger: logger) { records.append(try row(next)) }
        return records
      }
    } catch {
      throw PostgresFailure.describe(error, database: name)
    }
  }

  /// Runs `query` for its effect.
  func execute(_ query: PostgresQuery) async throws {
    do { try await timing.measure(.statement) { _ = try await client.query(query, logger: logger) } } catch {
      throw PostgresFailure.describe(error, database: name)
    }
  }

  /// Runs `body` on a connection of its own, outside the pool (a LISTEN,
  /// or the leader's advisory lock, which lives as long as its session),
  /// closed when `body` returns.
  func withOwnConnection<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws
    -> Result
  {
    let connection: PostgresConnection
    do {
      connection = try await PostgresConnection.connect(
        on: MultiThreadedEventLoopGroup.singleton.any(), configuration: connectionConfiguration,
        id: Int.random(in: 1..<Int.max), logger: logger
      ).get()
    } catch {
      throw PostgresFailure.describe(error, database: name)
    }
    do {
      let result = try await body(connection)
      try? await connection.close()
      return result
    } catch {
      try? await connection.close()
      throw PostgresFailure.describe(error, database: name)
    }
  }

  /// Runs `body` on one pooled connection, outside a transaction (one
  /// statement: its own transaction, without BEGIN and COMMIT's round
  /// trips).
  func onConnection<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
    do {
      return try await timing.measure(.statement) {
        try await client.withConnection { connection in try await body(connection) }
      }
    } catch {
      throw PostgresFailure.describe(error, database: name)
    }
  }

  /// Runs `body` in one transaction (committed when it returns, rolled
  /// back when it throws).
  func transaction<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
    do {
      return try await timing.measure(.transaction) {
        try await client.withTransaction(logger: logger) { connection in try await body(connection) }
      }
    } catch {
      throw PostgresFailure.describe(error, database: name)
    }
  }

  // MARK: Tokens

  static let tokenColumns =
    "id, role, secret_hash, created_ms, expires_ms, revoked, description, labels, allowed_label_keys"

  static func token(_ row: PostgresRow) throws -> TokenRecord {
    let (id, role, hash, created, expires, revoked, description, labels, keys) = try row.decode(
      (String, String, String, Int64, Int64, Bool, String, String, String).self)
    guard let role = TokenRole(rawValue: role) else {
      throw DeckhandError(.internalError, "token \(id) has an unknown role \"\(role)\" in the store")
    }
    return TokenRecord(
      id: id, role: role, secretHash: hash, createdMs: created, expiresMs: expires, revoked: revoked,
      description: description, labels: try JSONColumn.decode(labels, empty: "{}"),
      allowedLabelKeys: try JSONColumn.decode(keys, empty: "[]"))
  }

  package func save(_ token: TokenRecord) async throws {
    try await onConnection { try await Self.insertToken(token, on: $0, logger: logger) }
  }

  /// Inserts or replaces `token`.
  static func insertToken(_ token: TokenRecord, on connection: PostgresConnection, logger: Logger) async throws {
    let labels = try JSONColumn.encode(token.labels, empty: "{}")
    let keys = try JSONColumn.encode(token.allowedLabelKeys, empty: "[]")
    try await connection.query(
      """
      INSERT INTO token (\(unescaped: Self.tokenColumns)) VALUES (\(token.id), \(token.role.rawValue), \
      \(token.secretHash), \(token.createdMs), \(token.expiresMs), \(token.revoked), \(token.description), \
      \(labels), \(keys))
      ON CONFLICT (id) DO UPDATE SET role = excluded.role, secret_hash = excluded.secret_hash, \
      created_ms = excluded.created_ms, expires_ms = excluded.expires_ms, revoked = excluded.revoked, \
      description = excluded.description, labels = excluded.labels, allowed_label_keys = excluded.allowed_label_keys
      """, logger: logger)
  }

  package func token(id: String) async throws -> TokenRecord? {
    try await fetch("SELECT \(unescaped: Self.tokenColumns) FROM token WHERE id = \(id)", Self.token).first
  }

  package func tokens() async throws -> [TokenRecord] {
    try await fetch("SELECT \(unescaped: Self.tokenColumns) FROM token ORDER BY created_ms, id", Self.token)
  }

  // MARK: Nodes

  static let nodeColumns = """
    id, name, hostname, labels, platform, agent_version, address, plugins, status, last_heartbeat_ms, created_ms, \
    credential_hash, agent_labels, join_token_id, availability
    """

  static func node(_ row: PostgresRow) throws -> NodeRecord {
    let (
      id, name, hostname, labels, platform, agentVersion, address, plugins, status, heartbeat, created, hash,
      agentLabels, joinToken, availability
    ) = try row.decode(
      (
        String, String, String, String, String, String, String, String, String, Int64, Int64, String, String, String,
        String
      ).self)
    guard let status = NodeStatus(rawValue: status) else {
      throw DeckhandError(.internalError, "node \(id) has an unknown status \"\(status)\" in the store")
    }
    return NodeRecord(
      id: id, name: name, hostname: hostname, labels: try JSONColumn.decode(labels, empty: "{}"), platform: platform,
      agentVersion: agentVersion, address: address, plugins: try JSONColumn.decode(plugins, empty: "{}"),
      status: status, lastHeartbeatMs: heartbeat, createdMs: created, credentialHash: hash,
      agentLabels: try JSONColumn.decode(agentLabels, empty: "{}"), joinTokenId: joinToken,
      availability: NodeAvailability(rawValue: availability) ?? .drain)
  }

  package func save(_ node: NodeRecord) async throws {
    do {
      try await onConnection { try await Self.insertNode(node, on: $0, logger: logger) }
    } catch let error as DeckhandError where error.code == .alreadyExists {
      throw DeckhandError(.alreadyExists, "node name \(node.name) is taken", cause: error)
    }
  }

  /// Inserts or replaces `node`.
  static func insertNode(_ node: NodeRecord, on connection: PostgresConnection, logger: Logger) async throws {
    let labels = try JSONColumn.encode(node.labels, empty: "{}")
    let plugins = try JSONColumn.encode(node.plugins, empty: "{}")
    let agentLabels = try JSONColumn.encode(node.agentLabels, empty: "{}")
    try await connection.query(
      """
      INSERT INTO node (\(unescaped: Self.nodeColumns)) VALUES (\(node.id), \(node.name), \(node.hostname), \
      \(labels), \(node.platform), \(node.agentVersion), \(node.address), \(plugins), \(node.status.rawValue), \
      \(node.lastHeartbeatMs), \(node.createdMs), \(node.credentialHash), \(agentLabels), \(node.joinTokenId), \
      \(node.availability.rawValue))
      ON CONFLICT (id) DO UPDATE SET name = excluded.name, hostname = excluded.hostname, labels = excluded.labels, \
      platform = excluded.platform, agent_version = excluded.agent_version, address = excluded.address, \
      plugins = excluded.plugins, status = excluded.status, last_heartbeat_ms = excluded.last_heartbeat_ms, \
      created_ms = excluded.created_ms, credential_hash = excluded.credential_hash, \
      agent_labels = excluded.agent_labels, join_token_id = excluded.join_token_id, \
      availability = excluded.availability
      """, logger: logger)
  }

  package func node(id: String) async throws -> NodeRecord? {
    try await fetch("SELECT \(unescaped: Self.nodeColumns) FROM node WHERE id = \(id)", Self.node).first
  }

  package func node(named name: String) async throws -> NodeRecord? {
    try await fetch("SELECT \(unescaped: Self.nodeColumns) FROM node WHERE name = \(name)", Self.node).first
  }

  package func nodes() async throws -> [NodeRecord] {
    try await fetch("SELECT \(unescaped: Self.nodeColumns) FROM node ORDER BY name", Self.node)
  }

  package func setNodeStatus(_ changes: [NodeLiveness.StatusChange]) async throws {
    guard !changes.isEmpty else { return }
    // One statement for the lot: heartbeats of thousands of nodes arrive
    // in each sweep.
    let ids = changes.map(\.id)
    let statuses = changes.map(\.status.rawValue)
    let heartbeats = changes.map { $0.lastHeartbeatMs ?? -1 }
    try await execute(
      """
      UPDATE node SET status = change.status, \
      last_heartbeat_ms = CASE WHEN change.heartbeat < 0 THEN node.last_heartbeat_ms ELSE change.heartbeat END
      FROM unnest(\(ids)::text[], \(statuses)::text[], \(heartbeats)::bigint[]) AS change(id, status, heartbeat)
      WHERE node.id = change.id AND (change.heartbeat < 0 OR node.last_heartbeat_ms <= change.heartbeat)
      """)
  }

  /// One statement for the batch: the columns as arrays.
  package func append(events: [FleetEvent]) async throws {
    guard !events.isEmpty else { return }
    let (ats, kinds) = (events.map(\.atMs), events.map(\.kind.rawValue))
    let (nodes, names, plugins) = (events.map(\.nodeId), events.map(\.nodeName), events.map(\.plugin))
    let (subjects, messages) = (events.map(\.subject), events.map(\.message))
    try await execute(
      """
      INSERT INTO fleet_event (at_ms, kind, node_id, node_name, plugin, subject, message)
      SELECT a, k, n, nn, p, s, m FROM unnest(\(ats)::bigint[], \(kinds)::text[], \(nodes)::text[], \(names)::text[],
        \(plugins)::text[], \(subjects)::text[], \(messages)::text[]) WITH ORDINALITY AS v(a, k, n, nn, p, s, m, o)
      ORDER BY o
      """)
  }

  package func events(after sequence: Int64, sinceMs: Int64, node: String?, plugin: String?, limit: Int) async throws
    -> [FleetEvent]
  {
    var query: PostgresQuery =
      "SELECT sequence, at_ms, kind, node_id, node_name, plugin, subject, message FROM fleet_event WHERE sequence > \(sequence) AND at_ms >= \(sinceMs)"
    if let node, !node.isEmpty {
      query.append(" AND (node_id = ", node)
      query.append(" OR node_name = ", node)
      query.sql += ")"
    }
    if let plugin, !plugin.isEmpty { query.append(" AND plugin = ", plugin) }
    query.sql += " ORDER BY sequence DESC LIMIT \(max(1, limit))"
    return try await fetch(query) { row -> FleetEvent? in
      let (sequence, at, kind, nodeId, nodeName, plugin, subject, message) = try row.decode(
        (Int64, Int64, String, String, String, String, String, String).self)
      guard let kind = FleetEvent.Kind(rawValue: kind) else { return nil }
      return FleetEvent(
        sequence: sequence, atMs: at, kind: kind, nodeId: nodeId, nodeName: nodeName, plugin: plugin,
        subject: subject, message: message)
    }.compactMap { $0 }.reversed()
  }

  package func pruneEvents(before beforeMs: Int64) async throws -> Int {
    try await fetch("DELETE FROM fleet_event WHERE at_ms < \(beforeMs) RETURNING 1") { _ in 1 }.count
  }

  /// One statement for every node: ids and reports as two arrays.
  package func setPluginUsage(_ usage: [String: [PluginUsage]], reportedMs: Int64) async throws {
    guard !usage.isEmpty else { return }
    let ids = Array(usage.keys)
    let texts = try ids.map { try JSONColumn.encode(usage[$0] ?? [], empty: "[]") }
    try await execute(
      """
      INSERT INTO node_usage (node_id, usage, reported_ms)
      SELECT v.id, v.usage, \(reportedMs) FROM unnest(\(ids)::text[], \(texts)::text[]) AS v(id, usage)
      WHERE EXISTS (SELECT 1 FROM node WHERE node.id = v.id)
      ON CONFLICT (node_id) DO UPDATE SET usage = excluded.usage, reported_ms = excluded.reported_ms
      """)
  }

  package func pluginUsage(node id: String) async throws -> (usage: [PluginUsage], reportedMs: Int64)? {
    guard
      let (text, reported) = try await fetch(
        "SELECT usage, reported_ms FROM node_usage WHERE node_id = \(id)", { try $0.decode((String, Int64).self) }
      ).first
    else { return nil }
    return (try JSONColumn.decode(text, empty: "[]"), reported)
  }

  package func markStaleNodesDown(heartbeatBeforeMs: Int64) async throws -> [String] {
    try await fetch(
      """
      UPDATE node SET status = \(NodeStatus.down.rawValue) \
      WHERE status = \(NodeStatus.ready.rawValue) AND last_heartbeat_ms < \(heartbeatBeforeMs) RETURNING id
      """
    ) { try $0.decode(String.self) }
  }

  package func setAllNodes(status: NodeStatus) async throws {
    try await execute("UPDATE node SET status = \(status.rawValue)")
  }

  package func removeNode(id: String, nowMs: Int64) async throws -> NodeRemoval? {
    try await transaction { connection in
      var nodes: [NodeRecord] = []
      for try await row in try await connection.query(
        "SELECT \(unescaped: Self.nodeColumns) FROM node WHERE id = \(id) FOR UPDATE", logger: logger)
      {
        nodes.append(try Self.node(row))
      }
      guard let node = nodes.first else { return nil }
      var retired: [TaskRecord] = []
      for try await row in try await connection.query(
        "SELECT \(unescaped: Self.taskColumns) FROM task WHERE node_id = \(id) AND active ORDER BY id FOR UPDATE",
        logger: logger)
      {
        var task = try Self.task(row)
        task.retire(nodeName: node.name, nowMs: nowMs)
        retired.append(task)
      }
      for task in retired { try await Self.saveTask(task, on: connection, logger: logger) }
      var released: [JobRecord] = []
      let open = try await Self.jobs(
        on: connection,
        "SELECT \(unescaped: Self.jobColumns) FROM job WHERE runner_id = \(id) AND state IN (\(JobState.waiting.rawValue), \(JobState.running.rawValue)) ORDER BY id FOR UPDATE",
        logger: logger)
      for var job in open where job.lifecycle.release(from: id, nowMs: nowMs) {
        try await Self.updateJob(job, on: connection, logger: logger)
        released.append(job)
      }
      try await connection.query("DELETE FROM node WHERE id = \(id)", logger: logger)
      try await connection.query("DELETE FROM node_usage WHERE node_id = \(id)", logger: logger)
      try await connection.query(
        """
        INSERT INTO removed_node (id, name, removed_ms) VALUES (\(id), \(node.name), \(nowMs))
        ON CONFLICT (id) DO UPDATE SET name = excluded.name, removed_ms = excluded.removed_ms
        """, logger: logger)
      return NodeRemoval(node: node, retiredTasks: retired, releasedJobs: released)
    }
  }

  package func removedNodes() async throws -> [RemovedNode] {
    try await fetch("SELECT id, name, removed_ms FROM removed_node ORDER BY id") { row in
      let (id, name, removed) = try row.decode((String, String, Int64).self)
      return RemovedNode(id: id, name: name, removedMs: removed)
    }
  }

  // MARK: Artifacts

  static let artifactColumns = "digest, name, version, platform, size, created_ms"

  static func artifact(_ row: PostgresRow) throws -> ArtifactRecord {
    let (digest, name, version, platform, size, created) = try row.decode(
      (String, String, String, String, Int64, Int64).self)
    return ArtifactRecord(
      digest: digest, name: name, version: version, platform: platform, size: size, createdMs: created)
  }

  package func save(_ artifact: ArtifactRecord) async throws {
    try await onConnection { try await Self.insertArtifact(artifact, on: $0, logger: logger) }
  }

  /// Inserts or replaces `artifact`.
  static func insertArtifact(_ artifact: ArtifactRecord, on connection: PostgresConnection, logger: Logger)
    async throws
  {
    try await connection.query(
      """
      INSERT INTO artifact (\(unescaped: Self.artifactColumns)) VALUES (\(artifact.digest), \(artifact.name), \
      \(artifact.version), \(artifact.platform), \(artifact.size), \(artifact.createdMs))
      ON CONFLICT (digest) DO UPDATE SET name = excluded.name, version = excluded.version, \
      platform = excluded.platform, size = excluded.size, created_ms = excluded.created_ms
      """, logger: logger)
  }

  package func artifact(digest: String) async throws -> ArtifactRecord? {
    try await fetch(
      "SELECT \(unescaped: Self.artifactColumns) FROM artifact WHERE digest = \(digest)", Self.artifact
    ).first
  }

  package func artifact(name: String, version: String) async throws -> ArtifactRecord? {
    try await fetch(
      """
      SELECT \(unescaped: Self.artifactColumns) FROM artifact WHERE name = \(name) AND version = \(version) \
      ORDER BY created_ms DESC, digest LIMIT 1
      """, Self.artifact
    ).first
  }

  package func artifacts() async throws -> [ArtifactRecord] {
    try await fetch(
      "SELECT \(unescaped: Self.artifactColumns) FROM artifact ORDER BY name, created_ms, digest", Self.artifact)
  }

  /// The size of a stored chunk of artifact content (1 MiB: a download's
  /// chunk, and far below PostgreSQL's 1 GiB limit on one value).
  static let artifactChunkSize = 1 << 20

  package func storeArtifactContent(digest: String, file path: String) async throws {
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw DeckhandError(.internalError, "the uploaded package \(path) is gone before it was stored")
    }
    defer {
      try? handle.close()
      try? FileManager.default.removeItem(atPath: path)
    }
    try await transaction { connection in
      var chunk: Int64 = 0
      while true {
        let data = try await BlockingWork.run { try handle.read(upToCount: Self.artifactChunkSize) ?? Data() }
        if data.isEmpty && chunk > 0 { break }
        // Content is addressed by its digest: the same digest is the
        // same bytes, so a second upload changes nothing.
        try await connection.query(
          """
          INSERT INTO artifact_chunk (digest, chunk, data) VALUES (\(digest), \(chunk), \(data)) \
          ON CONFLICT (digest, chunk) DO NOTHING
          """, logger: logger)
        chunk += 1
        if data.count < Self.artifactChunkSize { break }
      }
    }
  }

  package func artifactContent(digest: String, offset: Int64, count: Int) async throws -> Data? {
    let size = Int64(Self.artifactChunkSize)
    let first = offset / size
    let last = (offset + Int64(max(count, 1)) - 1) / size
    let chunks = try await fetch(
      """
      SELECT chunk, data FROM artifact_chunk WHERE digest = \(digest) AND chunk BETWEEN \(first) AND \(last) \
      ORDER BY chunk
      """
    ) { try $0.decode((Int64, Data).self) }
    guard !chunks.isEmpty else {
      let stored = try await fetch("SELECT 1 FROM artifact_chunk WHERE digest = \(digest) LIMIT 1") {
        try $0.decode(Int.self)
      }
      return stored.isEmpty ? nil : Data()
    }
    var content = Data()
    for (index, data) in chunks {
      let start = index == first ? Int(offset - first * size) : 0
      guard start < data.count else { continue }
      content.append(data[data.startIndex + start..<data.endIndex])
    }
    return content.prefix(count)
  }

  // MARK: Replicas

  package func announceReplica(id: String, address: String, nowMs: Int64) async throws {
    try await transaction { connection in
      try await connection.query(
        """
        INSERT INTO replica (id, address, started_ms, seen_ms) VALUES (\(id), \(address), \(nowMs), \(nowMs)) \
        ON CONFLICT (id) DO UPDATE SET address = excluded.address, seen_ms = excluded.seen_ms
        """, logger: logger)
      try await connection.query("DELETE FROM replica WHERE seen_ms < \(nowMs - 86_400_000)", logger: logger)
    }
  }

  package func replicas(seenSinceMs sinceMs: Int64) async throws -> [String] {
    try await fetch("SELECT address FROM replica WHERE seen_ms >= \(sinceMs) ORDER BY started_ms, id") {
      try $0.decode(String.self)
    }
  }

  // MARK: The server's own secrets

  package func secret(_ name: String) async throws -> String? {
    try await fetch("SELECT value FROM server_secret WHERE name = \(name)") { try $0.decode(String.self) }.first
  }

  package func claimSecret(_ name: String, value: String) async throws -> String {
    try await execute(
      "INSERT INTO server_secret (name, value) VALUES (\(name), \(value)) ON CONFLICT (name) DO NOTHING")
    return try await secret(name) ?? value
  }

  // MARK: Deployments and tasks

  static let deploymentColumns = """
    id, plugin, version, artifact_digest, artifact_size, selector, config_json, max_failures, state, created_ms, \
    parallelism, delay_ms, failure_action, monitor_ms, previous_id, trace_context
    """

  static func deployment(_ row: PostgresRow) throws -> DeploymentRecord {
    let (
      id, plugin, version, digest, size, selector, config, maxFailures, state, created, parallelism, delay, action,
      monitor, previous, trace
    ) = try row.decode(
      (
        String, String, String, String, Int64, String, String, Int, String, Int64, Int, Int64, String, Int64, String,
        String
      ).self)
    return DeploymentRecord(
      id: id, plugin: plugin, version: version, artifactDigest: digest, artifactSize: size,
      selector: try JSONColumn.decode(selector, empty: "{}"), configJSON: config, maxFailures: maxFailures,
      state: DeploymentState(text: state), createdMs: created, parallelism: parallelism, delayMs: delay,
      failureAction: DeploymentRecord.FailureAction(rawValue: action) ?? .pause, monitorMs: monitor,
      previousId: previous, traceContext: try JSONColumn.decode(trace, empty: "{}"))
  }

  static func saveDeployment(_ deployment: DeploymentRecord, on connection: PostgresConnection, logger: Logger)
    async throws
  {
    let selector = try JSONColumn.encode(deployment.selector, empty: "{}")
    let trace = try JSONColumn.encode(deployment.traceContext, empty: "{}")
    try await connection.query(
      """
      INSERT INTO deployment (\(unescaped: deploymentColumns)) VALUES (\(deployment.id), \(deployment.plugin), \
      \(deployment.version), \(deployment.artifactDigest), \(deployment.artifactSize), \(selector), \
      \(deployment.configJSON), \(deployment.maxFailures), \(deployment.state.text), \(deployment.createdMs), \
      \(deployment.parallelism), \(deployment.delayMs), \(deployment.failureAction.rawValue), \(deployment.monitorMs), \
      \(deployment.previousId), \(trace))
      ON CONFLICT (id) DO UPDATE SET plugin = excluded.plugin, version = excluded.version, \
      artifact_digest = excluded.artifact_digest, artifact_size = excluded.artifact_size, \
      selector = excluded.selector, config_json = excluded.config_json, max_failures = excluded.max_failures, \
      state = excluded.state, created_ms = excluded.created_ms, parallelism = excluded.parallelism, \
      delay_ms = excluded.delay_ms, failure_action = excluded.failure_action, monitor_ms = excluded.monitor_ms, \
      previous_id = excluded.previous_id, trace_context = excluded.trace_context
      """, logger: logger)
  }

  package func save(_ deployment: DeploymentRecord) async throws {
    try await apply(deployments: [deployment], tasks: [])
  }

  package func deployment(id: String) async throws -> DeploymentRecord? {
    try await fetch(
      "SELECT \(unescaped: Self.deploymentColumns) FROM deployment WHERE id = \(id)", Self.deployment
    ).first
  }

  package func deployments() async throws -> [DeploymentRecord] {
    try await fetch(
      "SELECT \(unescaped: Self.deploymentColumns) FROM deployment ORDER BY created_ms, id", Self.deployment)
  }

  static let taskColumns = """
    id, deployment_id, node_id, plugin, version, artifact_digest, artifact_size, config_json, state, message, \
    updated_ms, active, trace_context
    """

  static func task(_ row: PostgresRow) throws -> TaskRecord {
    let (id, deployment, node, plugin, version, digest, size, config, state, message, updated, active, trace) =
      try row.decode(
        (String, String, String, String, String, String, Int64, String, Int, String, Int64, Bool, String).self)
    guard let state = TaskState(rawValue: state) else {
      throw DeckhandError(.internalError, "task \(id) has an unknown state \(state) in the store")
    }
    return TaskRecord(
      id: id, deploymentId: deployment, nodeId: node, plugin: plugin, version: version, artifactDigest: digest,
      artifactSize: size, configJSON: config, state: state, message: message, updatedMs: updated, active: active,
      traceContext: try JSONColumn.decode(trace, empty: "{}"))
  }

  static func saveTask(_ task: TaskRecord, on connection: PostgresConnection, logger: Logger) async throws {
    let trace = try JSONColumn.encode(task.traceContext, empty: "{}")
    try await connection.query(
      """
      INSERT INTO task (\(unescaped: taskColumns)) VALUES (\(task.id), \(task.deploymentId), \(task.nodeId), \
      \(task.plugin), \(task.version), \(task.artifactDigest), \(task.artifactSize), \(task.configJSON), \
      \(task.state.rawValue), \(task.message), \(task.updatedMs), \(task.active), \(trace))
      ON CONFLICT (id) DO UPDATE SET deployment_id = excluded.deployment_id, node_id = excluded.node_id, \
      plugin = excluded.plugin, version = excluded.version, artifact_digest = excluded.artifact_digest, \
      artifact_size = excluded.artifact_size, config_json = excluded.config_json, state = excluded.state, \
      message = excluded.message, updated_ms = excluded.updated_ms, active = excluded.active, \
      trace_context = excluded.trace_context
      """, logger: logger)
  }

  package func apply(deployments: [DeploymentRecord], tasks: [TaskRecord]) async throws {
    guard !deployments.isEmpty || !tasks.isEmpty else { return }
    try await transaction { connection in
      for deployment in deployments { try await Self.saveDeployment(deployment, on: connection, logger: logger) }
      for task in tasks { try await Self.saveTask(task, on: connection, logger: logger) }
    }
  }

  package func tasks(node: String?, deployment: String?, activeOnly: Bool) async throws -> [TaskRecord] {
    var query: PostgresQuery = "SELECT \(unescaped: Self.taskColumns) FROM task WHERE true"
    if let node { query.append(" AND node_id = ", node) }
    if let deployment { query.append(" AND deployment_id = ", deployment) }
    if activeOnly { query.sql += " AND active" }
    query.sql += " ORDER BY updated_ms, id"
    return try await fetch(query, Self.task)
  }

  package func updateTasks(_ updates: [TaskUpdate]) async throws -> [TaskRecord] {
    guard !updates.isEmpty else { return [] }
    return try await transaction { connection in
      var tasks: [String: TaskRecord] = [:]
      for try await row in try await connection.query(
        "SELECT \(unescaped: Self.taskColumns) FROM task WHERE id = ANY(\(updates.map(\.id))) ORDER BY id FOR UPDATE",
        logger: logger)
      {
        let task = try Self.task(row)
        tasks[task.id] = task
      }
      var changed: [String: TaskRecord] = [:]
      let now = nowMs()
      for update in updates {
        guard var task = changed[update.id] ?? tasks[update.id], task.apply(update, nowMs: now) else { continue }
        changed[task.id] = task
      }
      for task in changed.values { try await Self.saveTask(task, on: connection, logger: logger) }
      return updates.compactMap { changed.removeValue(forKey: $0.id) }
    }
  }
}

extension PostgresQuery {
  /// Appends `sql` and a bind for `value` after it.
  mutating func append(_ sql: String, _ value: some PostgresNonThrowingEncodable) {
    self.sql += sql
    binds.append(value, context: .default)
    self.sql += "$\(binds.count)"
  }
}
