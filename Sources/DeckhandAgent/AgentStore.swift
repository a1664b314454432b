package import DeckhandCore
package import DeckhandPluginHost
internal import DeckhandRuntime
internal import Foundation
internal import GRDB

/// The agent's database: SQLite through GRDB, in WAL mode, at
/// `STATE/agent.sqlite`. Holds the installed plugins and the Host API's
/// key-value data. Every write is a transaction: a record is either whole
/// or absent after a crash.
package final class AgentStore: PluginDataStore, Sendable {
  private let database: DatabasePool
  /// The database file.
  package let path: String

  /// Opens (creating and migrating) the database in `stateDirectory`.
  package init(stateDirectory: String) throws {
    path = "\(stateDirectory)/agent.sqlite"
    do {
      try FileManager.default.createDirectory(
        atPath: stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      var configuration = Configuration()
      configuration.busyMode = .timeout(5)
      database = try DatabasePool(path: path, configuration: configuration)
      try Self.migrator.migrate(database)
    } catch {
      throw DeckhandError(
        .configurationInvalid,
        "cannot open the agent database \(path): \(error); check --state-dir and its permissions", cause: error)
    }
  }

  private static var migrator: DatabaseMigrator {
    var migrator = DatabaseMigrator()
    migrator.registerMigration("v1 plugins") { db in
      try db.create(table: "plugin") { table in
        table.column("name", .text).primaryKey()
        table.column("revision", .integer).notNull()
        table.column("manifestPath", .text).notNull()
        table.column("manifestText", .text).notNull()
        table.column("entrypointDigest", .text).notNull()
        table.column("attachment", .jsonText)
        table.column("restarts", .integer).notNull().defaults(to: 0)
        table.column("lastExit", .text)
        table.column("installedAt", .double).notNull()
      }
    }
    migrator.registerMigration("v2 plugin signatures") { db in
      try db.alter(table: "plugin") { table in table.add(column: "signatureText", .text) }
    }
    migrator.registerMigration("v3 plugin key-value store") { db in
      try db.create(table: "kv") { table in
        table.column("plugin", .text).notNull()
        table.column("key", .text).notNull()
        table.column("value", .blob).notNull()
        table.primaryKey(["plugin", "key"])
      }
    }
    migrator.registerMigration("v4 plugin commands") { db in
      try db.create(table: "command") { table in
        table.column("name", .text).primaryKey()
        table.column("plugin", .text).notNull().indexed()
      }
    }
    migrator.registerMigration("v5 server tasks") { db in
      try db.create(table: "serverTask") { table in
        table.column("taskId", .text).primaryKey()
        table.column("plugin", .text).notNull()
        table.column("spec", .text).notNull()
        table.column("state", .integer).notNull()
        table.column("message", .text).notNull()
        table.column("installed", .boolean).notNull()
      }
    }
    return migrator
  }

  // MARK: Tasks the server assigned

  /// A task the server assigned, as the agent last saw and reported it.
  package struct ServerTask: Sendable, Hashable {
    package var taskId: String
    package var plugin: String
    /// plugin@version#digest#config: what was installed for it.
    package var spec: String
    package var state: TaskState
    package var message: String
    /// Whether the plugin of this task is the one installed now.
    package var installed: Bool
  }

  /// A write; a full (or read-only, or failing) disk is said as
  /// ``StorageFailure`` naming the state directory.
  private func write<T>(_ body: (Database) throws -> T) throws -> T {
    do { return try database.write(body) } catch {
      throw StorageFailure.describe(error, directory: String(path.dropLast("/agent.sqlite".count)))
    }
  }

  package func serverTasks() throws -> [ServerTask] {
    try database.read { db in
      try Row.fetchAll(db, sql: "SELECT * FROM serverTask").map { row in
        ServerTask(
          taskId: row["taskId"], plugin: row["plugin"], spec: row["spec"],
          // A state this agent does not know (a damaged file): converge
          // on the task again, as if it were new.
          state: TaskState(rawValue: row["state"]) ?? .new, message: row["message"], installed: row["installed"])
      }
    }
  }

  package func saveServerTask(_ task: ServerTask) throws {
    try write { db in
      try db.execute(
        sql:
          "INSERT OR REPLACE INTO serverTask (taskId, plugin, spec, state, message, installed) VALUES (?, ?, ?, ?, ?, ?)",
        arguments: [task.taskId, task.plugin, task.spec, task.state.rawValue, task.message, task.installed])
    }
  }

  package func deleteServerTask(_ taskId: String) throws {
    try write { db in try db.execute(sql: "DELETE FROM serverTask WHERE taskId = ?", arguments: [taskId]) }
  }

  // MARK: Commands plugins put on the command socket

  /// Every command a plugin registered, by name: (name, plugin).
  package func commands() throws -> [(name: String, plugin: String)] {
    try database.read { db in
      try Row.fetchAll(db, sql: "SELECT name, plugin FROM command ORDER BY name").map { ($0["name"], $0["plugin"]) }
    }
  }

  /// Records that `plugin` registered `name`.
  package func addCommand(_ name: String, plugin: String) throws {
    try write { db in
      try db.execute(sql: "INSERT OR REPLACE INTO command (name, plugin) VALUES (?, ?)", arguments: [name, plugin])
    }
  }

  /// Forgets the command `name`.
  package func removeCommand(_ name: String) throws {
    try write { db in try db.execute(sql: "DELETE FROM command WHERE name = ?", arguments: [name]) }
  }

  // MARK: Key-value data of the Host API, per plugin

  /// The value of `key` in `plugin`'s store.
  package func kvGet(_ plugin: String, _ key: String) throws -> [UInt8]? {
    try database.read { db in
      try Data.fetchOne(db, sql: "SELECT value FROM kv WHERE plugin = ? AND key = ?", arguments: [plugin, key])
        .map { Array($0) }
    }
  }

  /// Sets `key` in `plugin`'s store.
  package func kvSet(_ plugin: String, _ key: String, _ value: [UInt8]) throws {
    try write { db in
      try db.execute(
        sql:
          "INSERT INTO kv (plugin, key, value) VALUES (?, ?, ?) ON CONFLICT(plugin, key) DO UPDATE SET value = excluded.value",
        arguments: [plugin, key, Data(value)])
    }
  }

  /// Deletes `key` from `plugin`'s store; whether it was there.
  package func kvDelete(_ plugin: String, _ key: String) throws -> Bool {
    try write { db in
      try db.execute(sql: "DELETE FROM kv WHERE plugin = ? AND key = ?", arguments: [plugin, key])
      return db.changesCount > 0
    }
  }

  /// `plugin`'s keys that start with `prefix`, sorted.
  package func kvList(_ plugin: String, prefix: String) throws -> [String] {
    try database.read { db in
      try String.fetchAll(
        db, sql: "SELECT key FROM kv WHERE plugin = ? AND substr(key, 1, length(?)) = ? ORDER BY key",
        arguments: [plugin, prefix, prefix])
    }
  }

  /// Forgets all of `plugin`'s keys (a remove with cleanup).
  package func kvDeleteAll(_ plugin: String) throws {
    try write { db in try db.execute(sql: "DELETE FROM kv WHERE plugin = ?", arguments: [plugin]) }
  }

  /// Every installed plugin, by name.
  package func plugins() throws -> [InstalledPlugin] {
    try database.read { db in try InstalledPlugin.order(InstalledPlugin.Columns.name).fetchAll(db) }
  }

  /// One installed plugin.
  package func plugin(named name: String) throws -> InstalledPlugin? {
    try database.read { db in try InstalledPlugin.fetchOne(db, key: name) }
  }

  /// Inserts or replaces a plugin's record.
  package func save(_ plugin: InstalledPlugin) throws {
    try write { db in try plugin.save(db) }
  }

  /// Changes one plugin's record, if it is installed.
  package func update(_ name: String, _ change: @Sendable (inout InstalledPlugin) -> Void) throws {
    try write { db in
      guard var plugin = try InstalledPlugin.fetchOne(db, key: name) else { return }
      change(&plugin)
      try plugin.update(db)
    }
  }

  /// Forgets a plugin.
  package func delete(_ name: String) throws {
    _ = try write { db in try InstalledPlugin.deleteOne(db, key: name) }
  }

  /// The journal mode in force ("wal").
  package func journalMode() throws -> String {
    try database.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
  }
}
