import DeckhandTestSupport
import Foundation
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
