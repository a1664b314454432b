internal import DeckhandCore
internal import Logging
internal import PostgresNIO

/// The PostgreSQL store's schema, as numbered migrations.
///
/// A migration is applied once, in order, in one transaction with the
/// version it brings; replicas that start together take an advisory lock
/// first, so one migrates and the others find it done. A database whose
/// version is newer than ``migrations`` knows is refused: an older server
/// would misread the newer one's rows.
enum PostgresSchema {
  /// The advisory lock key migrations hold ("deckhand" in ASCII).
  static let migrationLock: Int64 = 0x6465_636B_6861_6E64

  /// Each migration's statements; version N is `migrations[N - 1]`.
  static let migrations: [[String]] = [
    [
      """
      CREATE TABLE token (
        id text PRIMARY KEY, role text NOT NULL, secret_hash text NOT NULL, created_ms bigint NOT NULL,
        expires_ms bigint NOT NULL, revoked boolean NOT NULL, description text NOT NULL, labels text NOT NULL,
        allowed_label_keys text NOT NULL)
      """,
      """
      CREATE TABLE node (
        id text PRIMARY KEY, name text NOT NULL UNIQUE, hostname text NOT NULL, labels text NOT NULL,
        platform text NOT NULL, agent_version text NOT NULL, address text NOT NULL, plugins text NOT NULL,
        status text NOT NULL, last_heartbeat_ms bigint NOT NULL, created_ms bigint NOT NULL,
        credential_hash text NOT NULL, agent_labels text NOT NULL, join_token_id text NOT NULL,
        availability text NOT NULL)
      """,
      "CREATE TABLE removed_node (id text PRIMARY KEY, name text NOT NULL, removed_ms bigint NOT NULL)",
      """
      CREATE TABLE artifact (
        digest text PRIMARY KEY, name text NOT NULL, version text NOT NULL, platform text NOT NULL,
        size bigint NOT NULL, created_ms bigint NOT NULL)
      """,
      "CREATE INDEX artifact_name_version ON artifact (name, version)",
      """
      CREATE TABLE deployment (
        id text PRIMARY KEY, plugin text NOT NULL, version text NOT NULL, artifact_digest text NOT NULL,
        artifact_size bigint NOT NULL, selector text NOT NULL, config_json text NOT NULL,
        max_failures bigint NOT NULL, state text NOT NULL, created_ms bigint NOT NULL)
      """,
      """
      CREATE TABLE task (
        id text PRIMARY KEY, deployment_id text NOT NULL, node_id text NOT NULL, plugin text NOT NULL,
        version text NOT NULL, artifact_digest text NOT NULL, artifact_size bigint NOT NULL,
        config_json text NOT NULL, state bigint NOT NULL, message text NOT NULL, updated_ms bigint NOT NULL,
        active boolean NOT NULL)
      """,
      "CREATE INDEX task_node ON task (node_id)",
      "CREATE INDEX task_deployment ON task (deployment_id)",
      """
      CREATE TABLE job (
        id text PRIMARY KEY, spec bytea NOT NULL, singleton_id text NOT NULL, target_runner text NOT NULL,
        target_labels text NOT NULL, project text NOT NULL, state bigint NOT NULL, runner_id text NOT NULL,
        queued_ms bigint NOT NULL, assigned_ms bigint NOT NULL, acked_ms bigint NOT NULL,
        complete_ms bigint NOT NULL, expires_ms bigint NOT NULL, heartbeat_ms bigint NOT NULL,
        exit_code bigint NOT NULL, error text NOT NULL, cancel_requested boolean NOT NULL,
        force_cancel boolean NOT NULL, result_code bigint NOT NULL, results text NOT NULL,
        output_sequence bigint NOT NULL, output_bytes bigint NOT NULL DEFAULT 0)
      """,
      "CREATE INDEX job_state_queued ON job (state, queued_ms, id)",
      "CREATE INDEX job_runner ON job (runner_id)",
      "CREATE INDEX job_singleton ON job (singleton_id) WHERE singleton_id <> ''",
      """
      CREATE TABLE job_output (
        job_id text NOT NULL, sequence bigint NOT NULL, kind bigint NOT NULL, data bytea NOT NULL,
        timestamp_ms bigint NOT NULL, PRIMARY KEY (job_id, sequence))
      """,
      """
      CREATE TABLE config_variable (
        scope bigint NOT NULL, target text NOT NULL, name text NOT NULL, value text NOT NULL,
        PRIMARY KEY (scope, target, name))
      """,
      // Artifact content in 1 MiB chunks: any replica serves downloads.
      """
      CREATE TABLE artifact_chunk (
        digest text NOT NULL, chunk bigint NOT NULL, data bytea NOT NULL, PRIMARY KEY (digest, chunk))
      """,
      "CREATE TABLE server_secret (name text PRIMARY KEY, value text NOT NULL)",
      """
      CREATE TABLE replica (
        id text PRIMARY KEY, address text NOT NULL, started_ms bigint NOT NULL, seen_ms bigint NOT NULL)
      """,
    ],
    // Rollouts after SwarmKit's update config.
    [
      """
      ALTER TABLE deployment ADD COLUMN parallelism bigint NOT NULL DEFAULT 1,
        ADD COLUMN delay_ms bigint NOT NULL DEFAULT 0, ADD COLUMN failure_action text NOT NULL DEFAULT 'pause',
        ADD COLUMN monitor_ms bigint NOT NULL DEFAULT 0, ADD COLUMN previous_id text NOT NULL DEFAULT ''
      """
    ],
    // What each node's plugins use, as its heartbeats last said.
    ["CREATE TABLE node_usage (node_id text PRIMARY KEY, usage text NOT NULL, reported_ms bigint NOT NULL)"],
    // The fleet's events (`deckhand events`).
    [
      """
      CREATE TABLE fleet_event (
        sequence bigserial PRIMARY KEY, at_ms bigint NOT NULL, kind text NOT NULL, node_id text NOT NULL,
        node_name text NOT NULL, plugin text NOT NULL, subject text NOT NULL, message text NOT NULL)
      """,
      "CREATE INDEX fleet_event_at ON fleet_event (at_ms)",
    ],
    // The trace that made a deployment, carried by its tasks.
    [
      "ALTER TABLE deployment ADD COLUMN trace_context text NOT NULL DEFAULT '{}'",
      "ALTER TABLE task ADD COLUMN trace_context text NOT NULL DEFAULT '{}'",
    ],
  ]

  /// The version this build's schema is at.
  static var currentVersion: Int { migrations.count }

  /// Brings the database to ``currentVersion``.
  ///
  /// - Throws: ``DeckhandError`` `configurationInvalid` when the database
  ///   is at a newer version than this server knows, naming both.
  static func migrate(_ client: PostgresClient, database: String, logger: Logger) async throws {
    try await client.withTransaction(logger: logger) { connection in
      try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
      try await connection.query(
        "CREATE TABLE IF NOT EXISTS deckhand_schema (version bigint NOT NULL, applied_ms bigint NOT NULL)",
        logger: logger)
      var found = 0
      for try await version in try await connection.query(
        "SELECT coalesce(max(version), 0) FROM deckhand_schema", logger: logger
      ).decode(Int.self) {
        found = version
      }
      guard found <= currentVersion else {
        throw DeckhandError(
          .configurationInvalid,
          "the database \(database) has Deckhand schema version \(found), newer than this server's "
            + "(\(currentVersion)): a newer deckhand wrote it; run that version, or restore a snapshot "
            + "into an empty database")
      }
      for version in (found + 1)...max(found + 1, currentVersion) where version <= currentVersion {
        for statement in migrations[version - 1] {
          try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
        }
        let now = nowMs()
        try await connection.query(
          "INSERT INTO deckhand_schema (version, applied_ms) VALUES (\(version), \(now))", logger: logger)
        logger.notice("database schema migrated", metadata: ["database": "\(database)", "version": "\(version)"])
      }
    }
  }
}
