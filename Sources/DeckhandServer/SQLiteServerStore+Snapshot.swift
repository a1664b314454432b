internal import DeckhandCore
internal import DeckhandProtocol
internal import DeckhandRuntime
internal import Foundation
internal import GRDB

extension SQLiteServerStore {
  package func export(to snapshot: SnapshotWriter) async throws {
    let artifactsDirectory = artifactsDirectory
    try await BlockingWork.run { [database] in
      // One read transaction: WAL gives it a consistent view while
      // writers go on. Artifact files are content-addressed and never
      // change, so reading them inside it is consistent too.
      try database.read { db in
        for row in try Row.fetchAll(db, sql: "SELECT name, value FROM serverSecret ORDER BY name") {
          try snapshot.write(SnapshotMapping.secret(name: row[0], value: row[1]))
        }
        for token in try TokenRecord.order(Column("id")).fetchAll(db) {
          try snapshot.write(SnapshotMapping.record(token))
        }
        let nodes = try NodeRecord.order(Column("id")).fetchCursor(db)
        while let node = try nodes.next() { try snapshot.write(SnapshotMapping.record(node)) }
        for row in try Row.fetchAll(db, sql: "SELECT id, name, removedMs FROM removedNode ORDER BY id") {
          try snapshot.write(SnapshotMapping.record(RemovedNode(id: row[0], name: row[1], removedMs: row[2])))
        }
        for artifact in try ArtifactRecord.order(Column("digest")).fetchAll(db) {
          try snapshot.write(SnapshotMapping.record(artifact))
          guard let handle = FileHandle(forReadingAtPath: "\(artifactsDirectory)/\(artifact.digest).tar.gz") else {
            continue
          }
          defer { try? handle.close() }
          var offset: Int64 = 0
          while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty {
            try snapshot.write(SnapshotMapping.chunk(digest: artifact.digest, offset: offset, data: data))
            offset += Int64(data.count)
          }
        }
        for deployment in try DeploymentRecord.order(Column("id")).fetchAll(db) {
          try snapshot.write(SnapshotMapping.record(deployment))
        }
        let tasks = try TaskRecord.order(Column("id")).fetchCursor(db)
        while let task = try tasks.next() { try snapshot.write(SnapshotMapping.record(task)) }
        var outputBytes: [String: Int64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT id, outputBytes FROM job") { outputBytes[row[0]] = row[1] }
        let jobs = try JobRecord.fetchCursor(db, sql: JobRecord.selectSQL + " ORDER BY id")
        while let job = try jobs.next() {
          try snapshot.write(SnapshotMapping.record(job, outputBytes: outputBytes[job.id] ?? 0))
        }
        let outputs = try Row.fetchCursor(
          db, sql: "SELECT jobId, sequence, kind, data, timestampMs FROM jobOutput ORDER BY jobId, sequence")
        while let row = try outputs.next() {
          try snapshot.write(
            SnapshotMapping.record(
              JobOutputRecord(jobId: row[0], sequence: row[1], kind: row[2], data: row[3], timestampMs: row[4])))
        }
        for variable in try ConfigRecord.order(Column("scope"), Column("target"), Column("name")).fetchAll(db) {
          try snapshot.write(SnapshotMapping.record(variable))
        }
      }
    }
  }

  package func restore(from snapshot: SnapshotReader) async throws -> UInt64 {
    let directory = artifactsDirectory
    return try await BlockingWork.run { [database] in
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      // Artifact content is written beside its final name and moved into
      // place once the rows are committed.
      var files: [String: FileHandle] = [:]
      defer { for handle in files.values { try? handle.close() } }
      let suffix = ".restoring-\(UUID().uuidString.prefix(8))"
      do {
        let count = try database.write { db -> UInt64 in
          for table in [
            "serverSecret", "token", "node", "removedNode", "artifact", "deployment", "task", "job", "jobOutput",
            "configVariable", "nodeUsage",
          ] {
            try db.execute(sql: "DELETE FROM \(table)")
          }
          var count: UInt64 = 0
          while let record = try snapshot.nextRecord() {
            guard let item = record.record else { continue }
            count += 1
            switch item {
            case .secret(let secret):
              try db.execute(
                sql: "INSERT INTO serverSecret (name, value) VALUES (?, ?)", arguments: [secret.name, secret.value])
            case .token(let token): try SnapshotMapping.token(token).insert(db)
            case .node(let node): try SnapshotMapping.node(node).insert(db)
            case .removedNode(let removed):
              try db.execute(
                sql: "INSERT INTO removedNode (id, name, removedMs) VALUES (?, ?, ?)",
                arguments: [removed.id, removed.name, removed.removedMs])
            case .artifact(let artifact): try (try SnapshotMapping.artifact(artifact)).insert(db)
            case .artifactChunk(let chunk):
              try SnapshotMapping.checkDigest(chunk.digest)
              if files[chunk.digest] == nil {
                let path = "\(directory)/\(chunk.digest).tar.gz\(suffix)"
                FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
                files[chunk.digest] = FileHandle(forWritingAtPath: path)
              }
              try files[chunk.digest]?.write(contentsOf: chunk.data)
            case .deployment(let deployment): try SnapshotMapping.deployment(deployment).insert(db)
            case .task(let task): try SnapshotMapping.task(task).insert(db)
            case .job(let job):
              try SnapshotMapping.job(job).insertRow(db)
              try db.execute(
                sql: "UPDATE job SET outputBytes = ? WHERE id = ?", arguments: [job.outputBytes, job.id])
            case .jobOutput(let output): try SnapshotMapping.output(output).insert(db)
            case .configVariable(let variable): try SnapshotMapping.config(variable).insert(db)
            case .end: count -= 1
            }
          }
          return count
        }
        for (digest, handle) in files {
          try handle.close()
          let path = "\(directory)/\(digest).tar.gz"
          try? FileManager.default.removeItem(atPath: path)
          try FileManager.default.moveItem(atPath: path + suffix, toPath: path)
        }
        files = [:]
        return count
      } catch {
        for digest in files.keys {
          try? FileManager.default.removeItem(atPath: "\(directory)/\(digest).tar.gz\(suffix)")
        }
        throw StorageFailure.describe(error, directory: directory)
      }
    }
  }
}
