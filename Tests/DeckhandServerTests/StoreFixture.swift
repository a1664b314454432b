import DeckhandCore
import DeckhandServer
import DeckhandTestSupport
import Foundation
import Logging
import Testing

/// The two stores the conformance suite holds to one behaviour.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
  case sqlite
  case postgres

  var testDescription: String { rawValue }
}

/// A fresh, empty store of each kind for one test: SQLite in a temporary
/// state directory, PostgreSQL in a new database of a throw-away cluster
/// that the test starts and stops.
enum StoreFixture {
  static var logger: Logger {
    var logger = Logger(label: "deckhand.store-test")
    logger.logLevel = .warning
    return logger
  }

  /// A control plane on the SQLite store of state directory `root/server`
  /// (another call on the same `root` is another replica of it).
  static func controlPlane(in root: String) async throws -> ControlPlane {
    let store = try SQLiteServerStore(stateDirectory: root + "/server")
    let authority = try await CertificateAuthority.load(
      store: store, directory: root + "/server/tls", hosts: ["127.0.0.1"])
    return try await ControlPlane(
      store: store, authority: authority, timing: ControlPlaneTiming(), artifactsDirectory: root + "/artifacts",
      advertisedAddresses: [], logger: logger)
  }

  static func with<Result: Sendable>(
    _ kind: StoreKind, _ body: (any ServerStore) async throws -> Result
  ) async throws -> Result {
    switch kind {
    case .sqlite:
      let root = try TestWorkspace()
      return try await body(try SQLiteServerStore(stateDirectory: root.root + "/server"))
    case .postgres:
      return try await PostgresCluster.with { cluster in
        try await PostgresServerStore.with(url: try await url(cluster), logger: logger, body)
      }
    }
  }

  /// A new database on `cluster`, as a `--database-url`.
  static func url(_ cluster: PostgresCluster) async throws -> DatabaseURL {
    let database = try await cluster.createDatabase()
    return try DatabaseURL(
      parsing: "postgres://\(cluster.superuser)@/\(database)?host=\(cluster.socketDirectory)&port=\(cluster.port)")
  }
}
