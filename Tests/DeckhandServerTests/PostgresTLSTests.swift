import DeckhandCore
import DeckhandServer
import DeckhandTestSupport
import Foundation
import Testing

/// TLS to PostgreSQL: `sslmode=require` checks the server's certificate
/// (against `sslrootcert` here), and a certificate nobody vouches for is
/// refused.
@Suite("PostgreSQL over TLS", .serialized)
struct PostgresTLSTests {
  @Test(
    "require and verify-full check the CA and the name, verify-ca the CA only, prefer nothing; failures are said at once"
  )
  func tls() async throws {
    // A CA, and a certificate for a name only (no IP address), made as
    // the server makes its own.
    let workspace = try TestWorkspace()
    let authority = try await CertificateAuthority.load(
      store: try SQLiteServerStore(stateDirectory: workspace.root + "/ca"), directory: workspace.root + "/tls",
      hosts: ["db.deckhand.test"])
    let caFile = try workspace.write("ca.pem", authority.caPEM)
    try await PostgresCluster.with(
      listenOnLoopback: true, tls: (authority.serverCertificatePEM, authority.serverKeyPEM)
    ) { cluster in
      let database = try await cluster.createDatabase()
      let base = "postgres://\(cluster.superuser)@127.0.0.1:\(cluster.port)/\(database)"
      func connect(_ query: String) async throws -> Bool {
        try await PostgresServerStore.with(
          url: try DatabaseURL(parsing: "\(base)?\(query)"), logger: StoreFixture.logger
        ) {
          try await $0.save(StoreConformanceTests.node(UUID().uuidString))
          return try await $0.usesTLS()
        }
      }
      #expect(try await connect("sslmode=verify-ca&sslrootcert=\(caFile)"), "the CA vouches for it: TLS")
      #expect(try await connect("sslmode=prefer"), "prefer takes TLS unchecked")
      #expect(try await connect("sslmode=disable") == false)
      for refused in [
        "sslmode=require&sslrootcert=\(caFile)",  // the certificate does not name 127.0.0.1
        "sslmode=verify-full&sslrootcert=\(caFile)",
        "sslmode=require",  // the system's CAs do not vouch for it
        "sslmode=verify-ca",
      ] {
        let started = ContinuousClock.now
        let error = await #expect(throws: DeckhandError.self, "\(refused)") { _ = try await connect(refused) }
        let took = started.duration(to: .now)
        #expect(took < .seconds(10), "\(refused): said after \(took)")
        #expect(error?.message.contains("TLS") == true, "\(refused): \(String(describing: error))")
      }
    }
  }
}
