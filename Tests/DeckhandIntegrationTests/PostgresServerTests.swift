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
    let cluster = try await PostgresCluster()
    do {
      try await fleet(cluster)
    } catch {
      await cluster.stop()
      throw error
    }
    await cluster.stop()
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
