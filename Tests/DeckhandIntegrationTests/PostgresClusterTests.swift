import DeckhandTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

@Suite("PostgresCluster: throw-away PostgreSQL servers for tests", .serialized)
struct PostgresClusterTests {
  @Test("a cluster starts as the unprivileged user, answers on its socket and loopback port, and stops")
  func lifecycle() async throws {
    let cluster = try await PostgresCluster(listenOnLoopback: true)
    #expect(try await cluster.psql("SELECT 40 + 2") == "42\n")
    let database = try await cluster.createDatabase()
    #expect(try await cluster.psql("SELECT current_database()", database: database) == "\(database)\n")
    #expect(try await cluster.psql("SELECT current_setting('listen_addresses')") == "127.0.0.1\n")
    let owner = try await runCommand("/usr/bin/stat", ["-c", "%U", "\(cluster.root)/data"])
    #expect(owner.stdout == "postgres\n")
    await cluster.stop()
    #expect(!FileManager.default.fileExists(atPath: cluster.root))
  }
}

@Suite("postgres-nio against a throw-away cluster", .serialized)
struct PostgresClientTests {
  @Test("postgres-nio connects over the cluster's unix socket and its loopback port and runs a query")
  func connects() async throws {
    let cluster = try await PostgresCluster(listenOnLoopback: true)
    let database = try await cluster.createDatabase()
    let logger = Logger(label: "test.postgres")
    let configurations = [
      PostgresConnection.Configuration(
        unixSocketPath: "\(cluster.socketDirectory)/.s.PGSQL.\(cluster.port)", username: cluster.superuser,
        password: nil, database: database),
      PostgresConnection.Configuration(
        host: "127.0.0.1", port: cluster.port, username: cluster.superuser, password: nil, database: database,
        tls: .disable),
    ]
    for (index, configuration) in configurations.enumerated() {
      let connection = try await PostgresConnection.connect(configuration: configuration, id: index, logger: logger)
      let rows = try await connection.query("SELECT 40 + \(index + 2) AS answer, current_database()", logger: logger)
      var answers: [(Int, String)] = []
      for try await (answer, name) in rows.decode((Int, String).self) { answers.append((answer, name)) }
      #expect(answers.count == 1 && answers[0].0 == 42 + index && answers[0].1 == database)
      try await connection.close()
    }
    await cluster.stop()
  }
}
