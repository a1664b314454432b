import DeckhandCore
import DeckhandServer
import DeckhandTestSupport
import Foundation
import GRDB
import Testing

/// Both stores migrate their schema and refuse one that is newer than they
/// know, naming what they found, before changing anything.
@Suite("Store schemas: versioned migrations, newer schemas refused")
struct StoreSchemaTests {
  @Test("SQLite: a database with a migration this server lacks is refused, and left as it was")
  func sqliteNewer() async throws {
    let root = try TestWorkspace()
    let directory = root.root + "/server"
    do {
      let store = try SQLiteServerStore(stateDirectory: directory)
      try await store.save(StoreConformanceTests.node("a"))
    }
    let queue = try DatabaseQueue(path: directory + "/server.sqlite")
    try await queue.write { db in
      try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99 from the future')")
    }
    try queue.close()
    let error = #expect(throws: DeckhandError.self) { try SQLiteServerStore(stateDirectory: directory) }
    #expect(error?.code == .configurationInvalid)
    #expect(error?.message.contains("v99 from the future") == true, "\(String(describing: error))")
    #expect(error?.message.contains("newer deckhand") == true)
    // Opened again by a server that knows it all, the data is there.
    let check = try DatabaseQueue(path: directory + "/server.sqlite")
    let names = try await check.read { try String.fetchAll($0, sql: "SELECT name FROM node") }
    #expect(names == ["name-a"])
  }

  @Test("PostgreSQL: migrated once by concurrent replicas; a newer schema version is refused, naming it")
  func postgresNewer() async throws {
    try await PostgresCluster.with { cluster in
      let url = try await StoreFixture.url(cluster)
      let logger = StoreFixture.logger
      // Four stores prepare at once: one migrates, the rest find it done.
      try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<4 {
          group.addTask { try await PostgresServerStore.with(url: url, logger: logger) { _ in } }
        }
        try await group.waitForAll()
      }
      let versions = try await cluster.psql(
        "SELECT version FROM deckhand_schema ORDER BY version", database: url.database)
      #expect(
        versions.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } == ["1", "2", "3", "4", "5"],
        "\(versions)")
      _ = try await cluster.psql(
        "INSERT INTO deckhand_schema (version, applied_ms) VALUES (99, 0)", database: url.database)
      let error = await #expect(throws: DeckhandError.self) {
        try await PostgresServerStore.with(url: url, logger: logger) { _ in }
      }
      #expect(error?.code == .configurationInvalid)
      #expect(error?.message.contains("version 99") == true, "\(String(describing: error))")
    }
  }
}
