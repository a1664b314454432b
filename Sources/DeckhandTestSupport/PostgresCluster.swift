package import DeckhandCore
package import Foundation

/// A throw-away PostgreSQL cluster for a test: `initdb` as the unprivileged
/// `postgres` user in a temporary folder, a server listening only on a unix
/// socket in that folder (and, if asked, on a loopback port), stopped and
/// removed when the value goes.
///
/// Debian's PostgreSQL 15 (`scripts/test.sh` installs it); nothing started
/// by hand is needed.
package final class PostgresCluster: Sendable {
  package static let binaries = "/usr/lib/postgresql/15/bin"
  /// The unprivileged user the cluster runs as (Debian's package makes it).
  package static let user = "postgres"

  /// The folder holding the data directory, the socket and the log.
  package let root: String
  /// The folder of the unix socket (`host=` in a connection string).
  package let socketDirectory: String
  package let port: Int
  /// The database superuser made by initdb (trust authentication, local only).
  package let superuser = "deckhand"
  /// `runuser … postgres`.
  private let process: Process

  /// Makes and starts a cluster; `port` is its TCP port on 127.0.0.1 if
  /// `listenOnLoopback`, and names the socket file either way. With `tls`
  /// (PEM certificate and key), it offers TLS on that port.
  package init(listenOnLoopback: Bool = false, tls: (certificate: String, key: String)? = nil) async throws {
    root = "/tmp/dhpg-\(UUID().uuidString.prefix(8))"
    socketDirectory = root
    port = try FreePort.next()
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    try await Self.check(runCommand("/bin/chown", [Self.user, root]), "chown \(root)")
    try await Self.check(
      runCommand(
        "/usr/sbin/runuser",
        [
          "-u", Self.user, "--", "\(Self.binaries)/initdb", "-D", "\(root)/data", "-A", "trust", "-U", superuser,
          "--no-sync", "-E", "UTF8", "--locale", "C",
        ]), "initdb")
    // The server is this value's child (not pg_ctl's daemon), so the test
    // owns it: it ends with `stop()` or, at the latest, with the value.
    let listen = listenOnLoopback ? "127.0.0.1" : ""
    var settings: [String] = []
    if let tls {
      // The key must belong to the server's user and be private to it.
      for (name, text, mode) in [("server.crt", tls.certificate, 0o644), ("server.key", tls.key, 0o600)] {
        let path = "\(root)/\(name)"
        _ = FileManager.default.createFile(
          atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
        try await Self.check(runCommand("/bin/chown", [Self.user, path]), "chown \(path)")
      }
      settings = [
        "-c", "ssl=on", "-c", "ssl_cert_file=\(root)/server.crt", "-c", "ssl_key_file=\(root)/server.key",
      ]
    }
    let server = Process()
    server.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
    server.arguments =
      [
        "-u", Self.user, "--", "\(Self.binaries)/postgres", "-D", "\(root)/data", "-k", root, "-p", "\(port)", "-c",
        "listen_addresses=\(listen)", "-c", "fsync=off", "-c", "full_page_writes=off",
      ] + settings
    _ = FileManager.default.createFile(atPath: "\(root)/log", contents: nil)
    let log = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(root)/log"))
    server.standardOutput = log
    server.standardError = log
    server.standardInput = FileHandle.nullDevice
    try server.run()
    process = server
    let (root, port) = (root, port)
    let ready = await eventually(timeout: .seconds(60)) {
      (try? await runCommand("\(Self.binaries)/pg_isready", ["-h", root, "-p", "\(port)", "-t", "1"]))?.status == 0
    }
    guard ready else {
      server.terminate()
      let text = (try? String(contentsOfFile: "\(root)/log", encoding: .utf8)) ?? ""
      throw DeckhandError(.startTimeout, "PostgreSQL did not start within 60 s; its log:\n\(text)")
    }
  }

  /// Runs `body` with a new cluster, and stops it afterwards whether
  /// `body` returned or threw.
  package static func with<Result>(
    listenOnLoopback: Bool = false, tls: (certificate: String, key: String)? = nil,
    _ body: (PostgresCluster) async throws -> Result
  ) async throws -> Result {
    let cluster = try await PostgresCluster(listenOnLoopback: listenOnLoopback, tls: tls)
    do {
      let result = try await body(cluster)
      await cluster.stop()
      return result
    } catch {
      await cluster.stop()
      throw error
    }
  }

  /// Runs `body` with a new cluster if `wanted` (stopped afterwards, as
  /// ``with(listenOnLoopback:tls:_:)`` does), else with nil.
  package static func with<Result>(if wanted: Bool, _ body: (PostgresCluster?) async throws -> Result)
    async throws -> Result
  {
    guard wanted else { return try await body(nil) }
    return try await with { cluster in try await body(cluster) }
  }

  /// A new database's URL, for the server's `--database-url`.
  package func databaseURL() async throws -> String {
    let name = try await createDatabase()
    return "postgres://\(superuser)@/\(name)?host=\(socketDirectory)&port=\(port)"
  }

  /// `psql` as the superuser on `database`; its output.
  package func psql(_ sql: String, database: String = "postgres") async throws -> String {
    let arguments = [
      "-h", socketDirectory, "-p", "\(port)", "-U", superuser, "-d", database, "-At", "-v", "ON_ERROR_STOP=1", "-c",
      sql,
    ]
    let result = try await runCommand("\(Self.binaries)/psql", arguments)
    try Self.check(result, "psql -c \(sql)")
    return result.stdout
  }

  /// A new empty database; its name.
  package func createDatabase(_ name: String = "deckhand_\(UUID().uuidString.prefix(8).lowercased())") async throws
    -> String
  {
    _ = try await psql("CREATE DATABASE \(name)")
    return name
  }

  /// Stops the server (fast shutdown: SIGINT) and removes the folder.
  package func stop() async {
    stopServer()
    let process = self.process
    _ = await eventually(timeout: .seconds(30)) { !process.isRunning }
    try? FileManager.default.removeItem(atPath: root)
  }

  /// A test that ends early does not leave its server running.
  deinit {
    stopServer()
  }

  /// SIGINT to the postmaster (runuser passes on only some signals).
  private func stopServer() {
    if let text = try? String(contentsOfFile: "\(root)/data/postmaster.pid", encoding: .utf8),
      let pid = text.split(separator: "\n").first.flatMap({ Int32($0) })
    {
      kill(pid, SIGINT)
    }
  }

  private static func check(_ result: (status: Int32, stdout: String, stderr: String), _ what: String) throws {
    guard result.status == 0 else {
      throw DeckhandError(.configurationInvalid, "\(what) failed (\(result.status)): \(result.stderr)")
    }
  }
}
