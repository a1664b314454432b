internal import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
internal import Logging
internal import PostgresNIO

extension PostgresServerStore {
  /// Every table, in the order a restore inserts them.
  static let tables = [
    "server_secret", "token", "node", "removed_node", "artifact", "artifact_chunk", "deployment", "task", "job",
    "job_output", "config_variable",
  ]

  package func export(to snapshot: SnapshotWriter) async throws {
    try await transaction { connection in
      // One consistent view of every table while replicas go on writing.
      try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
      func each(_ query: PostgresQuery, _ body: (PostgresRow) throws -> Void) async throws {
        for try await row in try await connection.query(query, logger: logger) { try body(row) }
      }
      try await each("SELECT name, value FROM server_secret ORDER BY name") { row in
        let (name, value) = try row.decode((String, String).self)
        try snapshot.write(SnapshotMapping.secret(name: name, value: value))
      }
      try await each("SELECT \(unescaped: Self.tokenColumns) FROM token ORDER BY id") {
        try snapshot.write(SnapshotMapping.record(try Self.token($0)))
      }
      try await each("SELECT \(unescaped: Self.nodeColumns) FROM node ORDER BY id") {
        try snapshot.write(SnapshotMapping.record(try Self.node($0)))
      }
      try await each("SELECT id, name, removed_ms FROM removed_node ORDER BY id") { row in
        let (id, name, removed) = try row.decode((String, String, Int64).self)
        try snapshot.write(SnapshotMapping.record(RemovedNode(id: id, name: name, removedMs: removed)))
      }
      var digests: [String] = []
      try await each("SELECT \(unescaped: Self.artifactColumns) FROM artifact ORDER BY digest") {
        let artifact = try Self.artifact($0)
        digests.append(artifact.digest)
        try snapshot.write(SnapshotMapping.record(artifact))
      }
      try await each("SELECT digest, chunk, data FROM artifact_chunk ORDER BY digest, chunk") { row in
        let (digest, chunk, data) = try row.decode((String, Int64, Data).self)
        try snapshot.write(
          SnapshotMapping.chunk(digest: digest, offset: chunk * Int64(Self.artifactChunkSize), data: data))
      }
      try await each("SELECT \(unescaped: Self.deploymentColumns) FROM deployment ORDER BY id") {
        try snapshot.write(SnapshotMapping.record(try Self.deployment($0)))
      }
      try await each("SELECT \(unescaped: Self.taskColumns) FROM task ORDER BY id") {
        try snapshot.write(SnapshotMapping.record(try Self.task($0)))
      }
      try await each("SELECT \(unescaped: Self.jobColumns), output_bytes FROM job ORDER BY id") { row in
        let bytes = try row.makeRandomAccess()[21].decode(Int64.self, context: .default)
        try snapshot.write(SnapshotMapping.record(try Self.job(row), outputBytes: bytes))
      }
      try await each(
        "SELECT job_id, sequence, kind, data, timestamp_ms FROM job_output ORDER BY job_id, sequence"
      ) { row in
        let (job, sequence, kind, data, timestamp) = try row.decode((String, Int64, Int, Data, Int64).self)
        try snapshot.write(
          SnapshotMapping.record(
            JobOutputRecord(jobId: job, sequence: sequence, kind: kind, data: data, timestampMs: timestamp)))
      }
      try await each("SELECT scope, target, name, value FROM config_variable ORDER BY scope, target, name") { row in
        let (scope, target, name, value) = try row.decode((Int, String, String, String).self)
        try snapshot.write(
          SnapshotMapping.record(ConfigRecord(scope: scope, target: target, name: name, value: value)))
      }
    }
  }

  package func restore(from snapshot: SnapshotReader) async throws -> UInt64 {
    try await transaction { connection in
      // Usage reports are not in snapshots: the restored nodes report again.
      try await connection.query(
        PostgresQuery(unsafeSQL: "TRUNCATE \(Self.tables.joined(separator: ", ")), node_usage"), logger: logger)
      var count: UInt64 = 0
      while let record = try snapshot.nextRecord() {
        guard let item = record.record else { continue }
        count += 1
        switch item {
        case .secret(let secret):
          try await connection.query(
            "INSERT INTO server_secret (name, value) VALUES (\(secret.name), \(secret.value))", logger: logger)
        case .token(let token):
          try await Self.insertToken(try SnapshotMapping.token(token), on: connection, logger: logger)
        case .node(let node):
          try await Self.insertNode(SnapshotMapping.node(node), on: connection, logger: logger)
        case .removedNode(let removed):
          try await connection.query(
            "INSERT INTO removed_node (id, name, removed_ms) VALUES (\(removed.id), \(removed.name), \(removed.removedMs))",
            logger: logger)
        case .artifact(let artifact):
          try await Self.insertArtifact(try SnapshotMapping.artifact(artifact), on: connection, logger: logger)
        case .artifactChunk(let chunk):
          try SnapshotMapping.checkDigest(chunk.digest)
          // Chunks arrive in order and at most 1 MiB each; an artifact
          // from SQLite is cut the same way (1 MiB reads).
          let index = chunk.offset / Int64(Self.artifactChunkSize)
          guard chunk.offset % Int64(Self.artifactChunkSize) == 0 else {
            throw DeckhandError(
              .configurationInvalid, "the snapshot's artifact \(chunk.digest) has a chunk at offset \(chunk.offset)")
          }
          try await connection.query(
            "INSERT INTO artifact_chunk (digest, chunk, data) VALUES (\(chunk.digest), \(index), \(chunk.data))",
            logger: logger)
        case .deployment(let deployment):
          try await Self.saveDeployment(SnapshotMapping.deployment(deployment), on: connection, logger: logger)
        case .task(let task):
          try await Self.saveTask(try SnapshotMapping.task(task), on: connection, logger: logger)
        case .job(let job):
          try await Self.insertJob(try SnapshotMapping.job(job), on: connection, logger: logger)
          try await connection.query(
            "UPDATE job SET output_bytes = \(job.outputBytes) WHERE id = \(job.id)", logger: logger)
        case .jobOutput(let output):
          try await connection.query(
            """
            INSERT INTO job_output (job_id, sequence, kind, data, timestamp_ms) VALUES (\(output.jobID), \
            \(output.sequence), \(Int64(output.kind)), \(output.data), \(output.timestampMs))
            """, logger: logger)
        case .configVariable(let variable):
          try await connection.query(
            """
            INSERT INTO config_variable (scope, target, name, value) VALUES (\(Int64(variable.scope)), \
            \(variable.target), \(variable.name), \(variable.value))
            """, logger: logger)
        case .end:
          count -= 1
        }
      }
      return count
    }
  }
}
