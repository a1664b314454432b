import DeckhandCore
import DeckhandTestSupport
import Foundation
import Testing

@Suite("Metrics: a real Prometheus scrapes a server and an agent", .serialized)
struct MetricsTests {
  /// A server and an agent joined to it, both with `--metrics-listen`.
  final class Fleet {
    let root: TestWorkspace
    let node: TestWorkspace
    let server: ServerProcess
    let agent: AgentProcess
    let serverMetrics: Int
    let agentMetrics: Int

    init() async throws {
      root = try TestWorkspace()
      serverMetrics = try FreePort.next()
      agentMetrics = try FreePort.next()
      server = try ServerProcess(
        root: root.root, port: try FreePort.next(), extra: ["--metrics-listen", "127.0.0.1:\(serverMetrics)"])
      try await server.waitUntilServing()
      node = try TestWorkspace()
      agent = try await AgentProcess.joined(
        node, to: server, name: "metrics-node", extra: ["--metrics-listen", "127.0.0.1:\(agentMetrics)"])
      // The command socket answers before /metrics is bound.
      let port = agentMetrics
      let serving = await eventually(timeout: .seconds(10)) {
        (try? await HTTPProbe.get(port: port, "/metrics"))?.status == 200
      }
      guard serving else { throw DeckhandError(.startTimeout, "the agent's /metrics did not answer within 10 s") }
    }

    deinit {
      agent.signal(SIGKILL)
      server.signal(SIGKILL)
    }
  }

  @Test("Prometheus finds both targets up, and counters move after the test did something")
  func prometheusScrapesBoth() async throws {
    let fleet = try await Fleet()
    let prometheus = try await PrometheusServer(targets: [
      "deckhand-server": "127.0.0.1:\(fleet.serverMetrics)", "deckhand-agent": "127.0.0.1:\(fleet.agentMetrics)",
    ])
    defer { prometheus.stop() }
    let up = await eventually(timeout: .seconds(30)) {
      let health = (try? await prometheus.targetHealth()) ?? [:]
      return health["deckhand-server"] == "up" && health["deckhand-agent"] == "up"
    }
    let health = (try? await prometheus.targetHealth()) ?? [:]
    #expect(up, "targets: \(health)")
    #expect(try await prometheus.value("up") == 2)

    // The node is READY in the server's gauge.
    let ready = await eventually(timeout: .seconds(20)) {
      (try? await prometheus.value(#"deckhand_nodes{job="deckhand-server",status="ready"}"#)) == 1
    }
    #expect(ready)

    // Two jobs through the queue and the agent; three command-socket
    // requests, one of them for a command that does not exist.
    for _ in 0..<2 {
      let ran = try await fleet.server.cli(["jobs", "run", "--wait", "--", "true"])
      #expect(ran.status == 0, "\(ran)")
    }
    _ = try await fleet.agent.call(["Command": "agent.status"])
    _ = try await fleet.agent.call(["Command": "agent.status"])
    _ = try await fleet.agent.call(["Command": "no.such.command"])
    let moved = await eventually(timeout: .seconds(20)) {
      let finished = try? await prometheus.value(#"deckhand_jobs_finished_total{state="success"}"#)
      let commands = try? await prometheus.value(
        #"deckhand_command_requests_total{command="agent.status",status="success"}"#)
      let unknown = try? await prometheus.value(
        #"deckhand_command_requests_total{command="unknown",status="command_not_found"}"#)
      return finished == 2 && (commands ?? 0) >= 2 && unknown == 1
    }
    #expect(moved)
    // Calls the CLI made are counted by service, method and code.
    let queued = try await prometheus.value(
      #"deckhand_grpc_server_requests_total{service="deckhand.server.v1.Jobs",method="QueueJob",code="OK"}"#)
    #expect(queued == 2)
    #expect(try await prometheus.value("deckhand_job_queue_wait_seconds_count") == 2)
    #expect(try await prometheus.value(#"deckhand_jobs{state="success"}"#) == 2)
    #expect(try await prometheus.value("deckhand_replica_leader") == 1)
    #expect((try await prometheus.value("deckhand_heartbeats_total") ?? 0) >= 1)
  }

  @Test("a plugin's CPU and memory reach plugins.list, the agent's metrics and `nodes inspect` through heartbeats")
  func pluginUsage() async throws {
    let fleet = try await Fleet()
    let manifest = try fleet.node.manifestFile(["name": "echo", "version": "1.0.0", "entrypoint": Fixtures.echo])
    let installed = try await fleet.agent.call(["Command": "plugins.install", "Manifest": .string(manifest)])
    #expect(installed["Status"] == .number(0), "\(installed)")
    let listed = try await fleet.agent.plugin("echo")
    guard case .object(let usage)? = listed?["Usage"], case .number(let resident)? = usage["ResidentBytes"] else {
      Issue.record("plugins.list shows no usage: \(String(describing: listed))")
      return
    }
    #expect(resident > 100_000)
    let scraped = try await PrometheusServer.get(fleet.agentMetrics, "/metrics")
    #expect(scraped.contains(#"deckhand_plugin_resident_memory_bytes{plugin="echo"}"#))
    #expect(scraped.contains(#"deckhand_plugins{state="running"} 1"#))
    // The server hears it with the next heartbeats.
    var reported: [JSONValue] = []
    let heard = await eventually(timeout: .seconds(20)) {
      guard case .object(let node)? = try? await fleet.server.json(["nodes", "inspect", "metrics-node"]),
        case .array(let usage)? = node["plugin_usage"] ?? node["pluginUsage"]
      else { return false }
      reported = usage
      return !usage.isEmpty
    }
    #expect(heard)
    guard case .object(let echo)? = reported.first else { return }
    #expect(echo["plugin"] == .string("echo"))
    let text = try await fleet.server.cli(["nodes", "inspect", "metrics-node"])
    #expect(text.stdout.contains("Plugin usage:") && text.stdout.contains("  echo: CPU "), "\(text.stdout)")
  }

  @Test("promtool check metrics finds nothing to fix on either endpoint")
  func promtoolLint() async throws {
    let fleet = try await Fleet()
    // Something on each side first, so every family has samples.
    #expect(try await fleet.server.cli(["jobs", "run", "--wait", "--", "true"]).status == 0)
    _ = try await fleet.agent.call(["Command": "agent.status"])
    for port in [fleet.serverMetrics, fleet.agentMetrics] {
      let text = try await PrometheusServer.get(port, "/metrics")
      #expect(text.contains("# HELP deckhand_"))
      let lint = try await runCommand("/usr/bin/promtool", ["check", "metrics"], stdin: text)
      #expect(lint.status == 0 && lint.stdout.isEmpty && lint.stderr.isEmpty, "port \(port): \(lint)")
      // No label names a node, a job or a token.
      #expect(!text.contains("node_id") && !text.contains("job_id") && !text.contains("DHTKN"))
    }
  }

  @Test("the endpoint answers only GET /metrics, refuses bodies, and drops silent connections")
  func hostileRequests() async throws {
    let fleet = try await Fleet()
    let port = fleet.agentMetrics
    #expect(try await HTTPProbe.get(port: port, "/metrics").status == 200)
    #expect(try await HTTPProbe.get(port: port, "/metrics?x=1").status == 200)
    #expect(try await HTTPProbe.get(port: port, "/").status == 404)
    #expect(try await HTTPProbe.get(port: port, "/../etc/passwd").status == 404)
    let post = try await HTTPProbe.send(
      port: port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
    #expect(post.status == 400, "\(post)")
    let delete = try await HTTPProbe.send(
      port: port, "DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    #expect(delete.status == 405, "\(delete)")
    let garbage = try await HTTPProbe.send(port: port, "\u{1}\u{2}not http at all\r\n\r\n")
    #expect(garbage.status == 400 || garbage.status == 0, "\(garbage)")
    // A connection that sends nothing is closed after the idle timeout.
    #expect(try await HTTPProbe.closesSilentConnection(port: port, within: .seconds(15)))
    // And the endpoint still serves.
    #expect(try await HTTPProbe.get(port: port, "/metrics").status == 200)
  }
}
