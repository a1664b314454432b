import DeckhandCore
import Testing

@Suite("DatabaseURL: --database-url, parsed and shown without its password")
struct DatabaseURLTests {
  @Test("a full URL: user, percent-encoded password, host, port, database, sslmode")
  func full() throws {
    let url = try DatabaseURL(parsing: "postgres://deck%40hand:p%40ss%3Aw0rd@db.example:6543/fleet?sslmode=require")
    #expect(url.user == "deck@hand")
    #expect(url.password == "p@ss:w0rd")
    #expect(url.address == .tcp(host: "db.example", port: 6543))
    #expect(url.database == "fleet")
    #expect(url.tls == .require)
    #expect("\(url)" == "postgres://deck@hand:***@db.example:6543/fleet?sslmode=require")
  }

  @Test("defaults: port 5432, sslmode prefer, no password; postgresql:// and IPv6 hosts")
  func defaults() throws {
    let url = try DatabaseURL(parsing: "postgresql://deckhand@10.0.0.5/deckhand")
    #expect(url.address == .tcp(host: "10.0.0.5", port: 5432))
    #expect(url.password == nil)
    #expect(url.tls == .prefer)
    let v6 = try DatabaseURL(parsing: "postgres://u@[::1]:5433/d?sslmode=verify-full")
    #expect(v6.address == .tcp(host: "::1", port: 5433))
    #expect(v6.tls == .verifyFull)
    #expect("\(v6)" == "postgres://u@[::1]:5433/d?sslmode=verify-full")
  }

  @Test("a unix socket, named as libpq does: a host parameter that is a path")
  func unixSocket() throws {
    let url = try DatabaseURL(parsing: "postgres://deckhand@/fleet?host=/run/postgresql&port=5433")
    #expect(url.address == .unixSocket(directory: "/run/postgresql", port: 5433))
    #expect("\(url)" == "postgres://deckhand@/fleet?host=/run/postgresql&port=5433&sslmode=prefer")
  }

  @Test("what is wrong is said, and the password is never repeated")
  func invalid() {
    let cases: [(String, String)] = [
      ("mysql://u@h/d", "the scheme is mysql, not postgres"),
      ("postgres://h/d", "no user"),
      ("postgres://u@h", "no database"),
      ("postgres://u@h/", "no database name"),
      ("postgres://u@h:port/d", "a bad port"),
      ("postgres://u@h:70000/d", "port 70000 is out of range"),
      ("postgres://u@h/d?sslmode=maybe", "sslmode maybe is not one of disable, prefer, require"),
      ("postgres://u:secret%zz@h/d", "the password is not valid percent-encoding"),
      ("postgres://u@/d", "no host"),
      ("db.example/fleet", "no scheme"),
    ]
    for (text, expected) in cases {
      #expect {
        try DatabaseURL(parsing: text)
      } throws: { error in
        guard let error = error as? DeckhandError else { return false }
        return error.code == .configurationInvalid && error.message.contains(expected)
          && !error.message.contains("secret")
      }
    }
  }
}
