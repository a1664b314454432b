import DeckhandCore
import DeckhandServer
import DeckhandTestSupport
import Foundation
import Testing

/// `deckhand server` with its state in PostgreSQL: everything the fleet
/// needs is in the database, so a server on a fresh state directory and
/// the same database serves the same fleet.
@Suite("Server on PostgreSQL", .serialized)
struct PostgresServerTests {
  @Test(
    "a server on PostgreSQL (from its TOML config) runs a fleet; another on an empty state directory and the same database takes it over"
  )
  func fleetOnPostgres() async throws {
    try await PostgresCluster.with { try await fleet($0) }
  }

  private func fleet(_ cluster: PostgresCluster) async throws {
    let database = try await cluster.createDatabase()
    let url = "postgres://\(cluster.superuser)@/\(database)?host=\(cluster.socketDirectory)&port=\(cluster.port)"
    let root = try TestWorkspace()
    let config = try root.write("server.toml", "database_url = \"\(url)\"\njob_retention = \"1d\"\n")
    let port = try FreePort.next()
    var server = try ServerProcess(root: root.root, port: port, extra: ["--config", config])
    try await server.waitUntilServing()
    #expect(server.logText.contains("state in PostgreSQL"), "\(server.logText)")
    #expect(!FileManager.default.fileExists(atPath: "\(server.stateDirectory)/server.sqlite"), "no SQLite store")
    let operatorToken = server.operatorToken
    let workerToken = server.workerToken
    #expect(!operatorToken.isEmpty && !workerToken.isEmpty)

    let node = try TestWorkspace()
    let agent = try AgentProcess(
      node, extra: ["--server", server.endpoint, "--join-token", workerToken, "--node-name", "pg-node"])
    defer { agent.signal(SIGKILL) }
    try await agent.waitUntilServing()
    #expect(
      await eventually(timeout: .seconds(20)) {
        (try? await ControlPlaneTests.nodeStatuses(server))?["pg-node"] == "NODE_STATUS_READY"
      }, "\(server.logText)")
    let pushed = try await server.cli(["artifacts", "push", try ControlPlaneTests.echoPackage(in: root.root)])
    #expect(pushed.status == 0, "\(pushed.stderr)")
    #expect(try await server.cli(["deploy", "echo@1.0.0"]).status == 0)
    #expect(
      await eventually(timeout: .seconds(30)) {
        let tasks = (try? await ControlPlaneTests.tasks(server)) ?? []
        return tasks.count == 1 && tasks[0].state == "TASK_STATE_RUNNING"
      }, "\(server.logText)")
    let echoPID = try #require(pid(try await agent.plugin("echo")))
    let job = try await server.cli(["jobs", "run", "--wait", "--", "sh", "-c", "echo from-postgres; exit 3"])
    #expect(job.status == 3 && job.stdout == "from-postgres\n", "\(job)")
    #expect(try await cluster.psql("SELECT count(*) FROM job", database: database).hasPrefix("1"))

    // Another server, with nothing in its state directory, on the same
    // database: the tokens, the node's credential, the CA (agents check
    // its digest), the artifact's content and the jobs are all there.
    server.signal(SIGTERM)
    _ = await eventually { !server.process.isRunning }
    let other = try TestWorkspace()
    server = try ServerProcess(root: other.root, port: port, extra: ["--database-url", url])
    try await server.waitUntilServing()
    #expect(!FileManager.default.fileExists(atPath: "\(server.stateDirectory)/operator-token"), "no second bootstrap")
    #expect(
      await eventually(timeout: .seconds(30)) {
        let listed = try? await server.cli(["nodes", "ls", "--json"], token: operatorToken)
        return listed?.stdout.contains("NODE_STATUS_READY") == true
      }, "\(server.logText)")
    let listed = try await server.cli(["jobs", "ls", "--json"], token: operatorToken)
    let jobs = try JSONValue.parse(Array(listed.stdout.utf8))
    if case .array(let items) = jobs { #expect(items.count == 1, "\(listed)") } else { Issue.record("\(listed)") }
    // A fresh node downloads the artifact from the database.
    let second = try TestWorkspace()
    let fresh = try AgentProcess(
      second, extra: ["--server", server.endpoint, "--join-token", workerToken, "--node-name", "pg-fresh"])
    defer { fresh.signal(SIGKILL) }
    try await fresh.waitUntilServing()
    #expect(
      await eventually(timeout: .seconds(30)) {
        (try? await fresh.plugin("echo")).flatMap { $0 } != nil
      }, "\(server.logText)")
    #expect(pid(try await agent.plugin("echo")) == echoPID, "the first node's plugin was not restarted")
    let again = try await server.cli(["jobs", "run", "--wait", "--", "echo", "again"], token: operatorToken)
    #expect(again.status == 0 && again.stdout == "again\n", "\(again)")
    server.signal(SIGTERM)
    _ = await eventually { !server.process.isRunning }
  }
}

/// `deckhand snapshot` and `deckhand server restore` with real servers and
/// agents: a single SQLite server grows into a PostgreSQL one, and its
/// agents stay joined.
@Suite("Snapshots through the CLI", .serialized)
struct SnapshotCommandTests {
  @Test(
    "snapshot save from a SQLite server, restored offline into PostgreSQL: the agent stays joined, its plugin untouched; online restore too"
  )
  func sqliteToPostgres() async throws {
    try await PostgresCluster.with { try await move($0) }
  }

  private func move(_ cluster: PostgresCluster) async throws {
    let root = try TestWorkspace()
    let port = try FreePort.next()
    var server = try ServerProcess(root: root.root, port: port)
    try await server.waitUntilServing()
    let operatorToken = server.operatorToken
    let node = try TestWorkspace()
    let agent = try AgentProcess(
      node, extra: ["--server", server.endpoint, "--join-token", server.workerToken, "--node-name", "mover"])
    defer { agent.signal(SIGKILL) }
    try await agent.waitUntilServing()
    #expect(try await server.cli(["artifacts", "push", try ControlPlaneTests.echoPackage(in: root.root)]).status == 0)
    #expect(try await server.cli(["deploy", "echo@1.0.0"]).status == 0)
    #expect(
      await eventually(timeout: .seconds(30)) {
        let tasks = (try? await ControlPlaneTests.tasks(server)) ?? []
        return tasks.count == 1 && tasks[0].state == "TASK_STATE_RUNNING"
      }, "\(server.logText)")
    let echoPID = try #require(pid(try await agent.plugin("echo")))
    let job = try await server.cli(["jobs", "run", "--wait", "--", "echo", "before the move"])
    #expect(job.status == 0, "\(job)")

    // Online: save, change something, restore: the change is undone and
    // the agent stays joined.
    let file = root.root + "/fleet.snapshot"
    let saved = try await server.cli(["snapshot", "save", file])
    #expect(saved.status == 0 && saved.stdout.contains("saved"), "\(saved)")
    #expect(try await server.cli(["config", "set", "AFTER=1"]).status == 0)
    let restored = try await server.cli(["snapshot", "restore", file])
    #expect(restored.status == 0, "\(restored)")
    let config = try await server.cli(["config", "ls"])
    #expect(!config.stdout.contains("AFTER"), "\(config)")
    #expect(
      await eventually(timeout: .seconds(20)) {
        (try? await ControlPlaneTests.nodeStatuses(server))?["mover"] == "NODE_STATUS_READY"
      }, "\(server.logText)")
    #expect(pid(try await agent.plugin("echo")) == echoPID)

    // A damaged snapshot is refused by the CLI and by the server alike.
    var damaged = try Data(contentsOf: URL(fileURLWithPath: file))
    damaged[damaged.count / 2] ^= 0xFF
    let bad = root.root + "/damaged.snapshot"
    try damaged.write(to: URL(fileURLWithPath: bad))
    let refused = try await server.cli(["snapshot", "restore", bad])
    #expect(refused.status != 0 && !refused.stderr.isEmpty, "\(refused)")

    // Offline: stop the SQLite server, restore into PostgreSQL, start a
    // server there on a new state directory and the same port.
    server.signal(SIGTERM)
    _ = await eventually { !server.process.isRunning }
    let url = try await cluster.databaseURL()
    let offline = try await runCommand(Fixtures.deckhand, ["server", "restore", file, "--database-url", url])
    #expect(offline.status == 0 && offline.stdout.contains("taken from sqlite"), "\(offline)")
    let other = try TestWorkspace()
    server = try ServerProcess(root: other.root, port: port, extra: ["--database-url", url])
    try await server.waitUntilServing()
    #expect(
      await eventually(timeout: .seconds(30)) {
        let listed = try? await server.cli(["nodes", "ls", "--json"], token: operatorToken)
        return listed?.stdout.contains("NODE_STATUS_READY") == true
      }, "the agent rejoined nothing: it was never asked to\n\(server.logText)")
    #expect(pid(try await agent.plugin("echo")) == echoPID, "the plugin was not restarted")
    let listed = try await server.cli(["jobs", "ls", "--json"], token: operatorToken)
    #expect(listed.stdout.contains("JOB_STATE_SUCCESS"), "\(listed)")
    let after = try await server.cli(["jobs", "run", "--wait", "--", "echo", "after the move"], token: operatorToken)
    #expect(after.status == 0 && after.stdout == "after the move\n", "\(after)")
    server.signal(SIGTERM)
    _ = await eventually { !server.process.isRunning }
  }
}
