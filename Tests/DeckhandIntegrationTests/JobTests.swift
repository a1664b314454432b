import DeckhandAgent
import DeckhandClient
import DeckhandCore
import DeckhandPluginHost
import DeckhandProtocol
import DeckhandServer
import DeckhandTestSupport
import Foundation
import GRPCCore
import Testing

@Suite("Jobs: a queue that agents pull, with stored output", .serialized)
struct JobTests {
  static let fastTimeouts = [
    "--job-ack-timeout", "1s", "--job-heartbeat-interval", "200ms", "--job-heartbeat-timeout", "1500ms",
  ]

  func agent(
    _ workspace: borrowing TestWorkspace, _ server: ServerProcess, name: String, labels: [String] = [],
    extra: [String] = []
  ) async throws -> AgentProcess {
    try AgentProcess(
      workspace,
      extra: [
        "--server", server.endpoint, "--join-token", try await server.workerToken(allowing: labels), "--node-name",
        name,
      ] + labels.flatMap { ["--label", $0] } + extra)
  }

  /// `jobs get --json` as fields.
  func job(_ server: ServerProcess, _ id: String) async throws -> [String: JSONValue] {
    guard case .object(let fields) = try await server.json(["jobs", "get", id]) else { return [:] }
    return fields
  }

  func state(_ server: ServerProcess, _ id: String) async -> String {
    if case .string(let state) = (try? await job(server, id))?["state"] { return state }
    return "JOB_STATE_UNKNOWN"
  }

  func queue(_ server: ServerProcess, _ arguments: [String]) async throws -> String {
    let queued = try await server.cli(["jobs", "run"] + arguments)
    #expect(queued.status == 0, "\(queued.stderr)")
    return queued.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
  }

  func nodeId(_ server: ServerProcess, _ name: String) async throws -> String {
    guard case .object(let node) = try await server.json(["nodes", "inspect", name]), case .string(let id) = node["id"]
    else { return "" }
    return id
  }

  @Test("a job runs; its output is read back complete after it ended; exit codes and errors come back")
  func runAndReadBack() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let runner = try await agent(node, server, name: "r1")
    defer { runner.signal(SIGKILL) }
    try await runner.waitUntilServing()

    let terminal = try await server.cli([
      "jobs", "run", "--wait", "--pty", "--", "sh", "-c",
      "if [ -t 0 ] && [ -t 1 ]; then echo tty $TERM; else echo none; fi",
    ])
    #expect(
      terminal.status == 0 && terminal.stdout.contains("tty xterm") && !terminal.stdout.contains("none"), "\(terminal)")
    let plain = try await server.cli(["jobs", "run", "--wait", "--", "sh", "-c", "[ -t 1 ] && echo tty || echo none"])
    #expect(plain.stdout == "none\n", "\(plain)")
    let waited = try await server.cli(["jobs", "run", "--wait", "--", "sh", "-c", "echo out; echo err >&2; exit 4"])
    #expect(waited.status == 4, "\(waited)")
    #expect(waited.stdout == "out\n" && waited.stderr.contains("err\n"), "\(waited)")

    #expect(try await server.cli(["config", "set", "GREETING=hello"]).status == 0)
    let id = try await queue(server, ["--", "sh", "-c", "echo $GREETING; echo second"])
    #expect(await eventually(timeout: .seconds(20)) { await state(server, id) == "JOB_STATE_SUCCESS" })
    let watched = try await server.cli(["jobs", "watch", id])
    #expect(watched.status == 0 && watched.stdout == "hello\nsecond\n", "\(watched)")
    let noop = try await server.cli(["jobs", "run", "--wait", "--", "true"])
    #expect(noop.status == 0)
    let listed = try await server.cli(["jobs", "ls"])
    #expect(listed.stdout.contains(id) && listed.stdout.contains("SUCCESS"), "\(listed.stdout)")
    let pruned = try await server.cli(["jobs", "prune"])
    #expect(pruned.stdout.contains("pruned 5"), "\(pruned)")
    server.signal(SIGTERM)
  }

  @Test("output larger than 10 MiB is read back complete and in order")
  func largeOutput() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let runner = try await agent(node, server, name: "r1")
    defer { runner.signal(SIGKILL) }
    try await runner.waitUntilServing()
    let id = try await queue(server, ["--", "seq", "1", "1600000"])
    #expect(await eventually(timeout: .seconds(60)) { await state(server, id) == "JOB_STATE_SUCCESS" })
    let watched = try await server.cli(["jobs", "watch", id])
    let expected = (1...1_600_000).map(String.init).joined(separator: "\n") + "\n"
    #expect(expected.utf8.count > 10 << 20)
    #expect(watched.stdout.utf8.count == expected.utf8.count)
    #expect(watched.stdout == expected, "output differs")
    server.signal(SIGTERM)
  }

  @Test("cancel stops a running job through its runner; force ends it at once; a queued one ends at once")
  func cancel() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let runner = try await agent(node, server, name: "r1")
    defer { runner.signal(SIGKILL) }
    try await runner.waitUntilServing()

    let marker = "job-cancel-\(UUID().uuidString.prefix(6))"
    let long = try await queue(server, ["--", "sh", "-c", "sleep 300; echo \(marker)"])
    #expect(await eventually(timeout: .seconds(20)) { await state(server, long) == "JOB_STATE_RUNNING" })
    #expect(try await server.cli(["jobs", "cancel", long]).status == 0)
    #expect(await eventually(timeout: .seconds(20)) { await state(server, long) == "JOB_STATE_ERROR" })
    let cancelled = try await job(server, long)
    #expect("\(cancelled["error"] ?? .null)".contains("cancelled"))
    #expect(
      await eventually { processes(withArgument: "sleep 300; echo \(marker)").isEmpty }, "the process group ended")

    let stubborn = try await queue(server, ["--", "sh", "-c", "trap '' TERM; sleep 300; echo \(marker)"])
    #expect(await eventually(timeout: .seconds(20)) { await state(server, stubborn) == "JOB_STATE_RUNNING" })
    #expect(try await server.cli(["jobs", "cancel", "--force", stubborn]).status == 0)
    #expect(await state(server, stubborn) == "JOB_STATE_ERROR", "force ends it at once")
    #expect("\(try await job(server, stubborn)["error"] ?? .null)".contains("force-cancelled"))

    // A job no runner may take stays queued; cancelling it ends it at once.
    let queued = try await queue(server, ["--label", "nobody=here", "--", "true"])
    #expect(await state(server, queued) == "JOB_STATE_QUEUED")
    #expect(try await server.cli(["jobs", "cancel", queued]).status == 0)
    #expect(await state(server, queued) == "JOB_STATE_ERROR")
    server.signal(SIGTERM)
  }

  @Test("an agent with --job-slots 2 runs two jobs at once, and a third when one ends; one slot runs one")
  func slots() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let runner = try await agent(node, server, name: "r2", extra: ["--job-slots", "2"])
    defer { runner.signal(SIGKILL) }
    try await runner.waitUntilServing()
    let marker = "job-slots-\(UUID().uuidString.prefix(6))"
    let long = [
      try await queue(server, ["--", "sh", "-c", "sleep 300; echo \(marker)"]),
      try await queue(server, ["--", "sh", "-c", "sleep 300; echo \(marker)"]),
    ]
    let third = try await queue(server, ["--", "true"])
    #expect(
      await eventually(timeout: .seconds(20)) {
        var running = 0
        for id in long where await state(server, id) == "JOB_STATE_RUNNING" { running += 1 }
        return running == 2
      }, "both long jobs run at once")
    #expect(await state(server, third) == "JOB_STATE_QUEUED", "no third slot")
    #expect(try await server.cli(["jobs", "cancel", "--force", long[0]]).status == 0)
    #expect(await eventually(timeout: .seconds(20)) { await state(server, third) == "JOB_STATE_SUCCESS" })
    #expect(try await server.cli(["jobs", "cancel", long[1]]).status == 0)
    #expect(await eventually { processes(withArgument: "sleep 300; echo \(marker)").isEmpty })
    server.signal(SIGTERM)
  }

  @Test("labels and runner ids pick the runner")
  func targeting() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let a = try TestWorkspace()
    let b = try TestWorkspace()
    let runners = [
      try await agent(a, server, name: "ra", labels: ["role=a"]),
      try await agent(b, server, name: "rb", labels: ["role=b"]),
    ]
    defer { for runner in runners { runner.signal(SIGKILL) } }
    for runner in runners { try await runner.waitUntilServing() }
    let idA = try await nodeId(server, "ra")
    let idB = try await nodeId(server, "rb")
    for _ in 0..<3 {
      let byLabel = try await queue(server, ["--label", "role=b", "--", "true"])
      let byId = try await queue(server, ["--target", "ra", "--", "true"])
      #expect(await eventually(timeout: .seconds(20)) { await state(server, byLabel) == "JOB_STATE_SUCCESS" })
      #expect(await eventually(timeout: .seconds(20)) { await state(server, byId) == "JOB_STATE_SUCCESS" })
      #expect(try await job(server, byLabel)["runner_id"] == .string(idB))
      #expect(try await job(server, byId)["runner_id"] == .string(idA))
    }
    // A drained runner takes no new job, even one aimed at it; activated, it runs it.
    #expect(try await server.cli(["nodes", "drain", "rb"]).status == 0)
    let held = try await queue(server, ["--label", "role=b", "--", "true"])
    let other = try await queue(server, ["--target", "ra", "--", "true"])
    #expect(await eventually(timeout: .seconds(20)) { await state(server, other) == "JOB_STATE_SUCCESS" })
    #expect(await state(server, held) == "JOB_STATE_QUEUED")
    #expect(try await server.cli(["nodes", "activate", "rb"]).status == 0)
    #expect(await eventually(timeout: .seconds(20)) { await state(server, held) == "JOB_STATE_SUCCESS" })
    #expect(try await job(server, held)["runner_id"] == .string(idB))
    server.signal(SIGTERM)
  }

  @Test("a runner killed mid-job: the job ends in ERROR by the heartbeat rule")
  func runnerKilled() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next(), extra: Self.fastTimeouts)
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let runner = try await agent(node, server, name: "r1")
    try await runner.waitUntilServing()
    let marker = "runner-killed-\(UUID().uuidString.prefix(6))"
    let id = try await queue(server, ["--", "sh", "-c", "sleep 60; echo \(marker)"])
    #expect(await eventually(timeout: .seconds(20)) { await state(server, id) == "JOB_STATE_RUNNING" })
    runner.signal(SIGKILL)
    #expect(await eventually(timeout: .seconds(20)) { await state(server, id) == "JOB_STATE_ERROR" })
    #expect("\(try await job(server, id)["error"] ?? .null)".contains("heartbeats"))
    for pid in processes(withArgument: "sleep 60; echo \(marker)") where pid > 1 { kill(pid, SIGKILL) }
    server.signal(SIGTERM)
  }

  @Test("a job its runner never acknowledges goes back to the queue, and another runner runs it")
  func unacknowledged() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next(), extra: Self.fastTimeouts)
    try await server.waitUntilServing()
    let endpoint = try ServerEndpoint(parsing: server.endpoint)
    // A token that lets the joining node choose its lane.
    let token = try await server.workerToken(allowing: ["lane=x"])
    let ca = try await ControlPlaneClient.trustedCA(at: endpoint, token: token)
    let id = try await queue(server, ["--label", "lane=x", "--", "true"])
    // A runner that takes the job and goes silent.
    let silent = Task {
      try await ControlPlaneClient.withClient(endpoint, caPEM: ca) { client in
        let dispatcher = Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client)
        var join = Deckhand_Dispatcher_V1_JoinRequest()
        join.nodeName = "silent"
        join.description_p.labels = ["lane": "x"]
        let joined = try await dispatcher.join(join, metadata: ControlPlaneClient.metadata(token))
        let jobs = Deckhand_Server_V1_Jobs.Client(wrapping: client)
        try await jobs.runnerJobStream(
          metadata: ControlPlaneClient.metadata(joined.credential),
          requestProducer: { writer in
            var ask = Deckhand_Server_V1_RunnerJobStreamRequest()
            ask.request = .init()
            try await writer.write(ask)
            try await Task.sleep(for: .seconds(60))
          },
          onResponse: { response in for try await _ in response.messages {} })
      }
    }
    defer { silent.cancel() }
    #expect(await eventually(timeout: .seconds(10)) { await state(server, id) == "JOB_STATE_WAITING" })
    #expect(await eventually(timeout: .seconds(10)) { await state(server, id) == "JOB_STATE_QUEUED" }, "ack timeout")
    let node = try TestWorkspace()
    let runner = try await agent(node, server, name: "r1", labels: ["lane=x"])
    defer { runner.signal(SIGKILL) }
    try await runner.waitUntilServing()
    #expect(await eventually(timeout: .seconds(20)) { await state(server, id) == "JOB_STATE_SUCCESS" })
    #expect(try await job(server, id)["runner_id"] == .string(try await nodeId(server, "r1")))
    server.signal(SIGTERM)
  }

  @Test("a server restart keeps queued jobs queued and resumes a running one whose runner comes back")
  func serverRestart() async throws {
    let root = try TestWorkspace()
    let port = try FreePort.next()
    var server = try ServerProcess(root: root.root, port: port)
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let runner = try await agent(node, server, name: "r1")
    defer { runner.signal(SIGKILL) }
    try await runner.waitUntilServing()
    let running = try await queue(server, ["--", "sh", "-c", "echo before; sleep 4; echo after"])
    let queued = try await queue(server, ["--label", "later=yes", "--", "true"])
    #expect(await eventually(timeout: .seconds(20)) { await state(server, running) == "JOB_STATE_RUNNING" })
    server.signal(SIGKILL)
    _ = await eventually { !server.process.isRunning }
    server = try ServerProcess(root: root.root, port: port)
    try await server.waitUntilServing()
    #expect(await state(server, queued) == "JOB_STATE_QUEUED")
    #expect(
      await eventually(timeout: .seconds(30)) { await state(server, running) == "JOB_STATE_SUCCESS" },
      "\(server.logText)")
    let watched = try await server.cli(["jobs", "watch", running])
    #expect(watched.stdout == "before\nafter\n", "\(watched)")
    server.signal(SIGTERM)
  }
}

@Suite("Interactive exec through the server", .serialized)
struct ExecTests {
  @Test("deckhand exec: stdin in, stdout and stderr out, the exit code back; -t gives a terminal")
  func interactive() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let agent = try AgentProcess(
      node, extra: ["--server", server.endpoint, "--join-token", server.workerToken, "--node-name", "box"])
    defer { agent.signal(SIGKILL) }
    try await agent.waitUntilServing()
    #expect(
      await eventually(timeout: .seconds(20)) {
        (try? await server.cli(["nodes", "ls"]))?.stdout.contains("READY") == true
      })
    let input = try root.write("input.txt", "first line\nsecond line\n")
    var result = (status: Int32(0), stdout: "", stderr: "")
    for _ in 0..<20 {
      result = try await runCommand(
        Fixtures.deckhand,
        [
          "exec", "--server", server.endpoint, "--token", server.operatorToken, "box", "--", "sh", "-c",
          "while read line; do echo \"got $line\"; done; echo oops >&2; exit 7",
        ], stdin: input)
      if !result.stderr.contains("no agent connected") { break }
      try await Task.sleep(for: .milliseconds(250))
    }
    #expect(result.status == 7, "\(result)")
    #expect(result.stdout == "got first line\ngot second line\n", "\(result)")
    #expect(result.stderr.contains("oops"), "\(result)")

    let terminal = try await runCommand(
      Fixtures.deckhand,
      [
        "exec", "-t", "--server", server.endpoint, "--token", server.operatorToken, "box", "--", "sh", "-c",
        "test -t 0 && echo tty; stty size",
      ], stdin: input)
    #expect(terminal.status == 0, "\(terminal)")
    #expect(terminal.stdout.contains("tty"), "\(terminal)")

    let unknown = try await runCommand(
      Fixtures.deckhand,
      ["exec", "--server", server.endpoint, "--token", server.operatorToken, "box", "--", "no-such-command-dh"])
    #expect(unknown.status == 127 && unknown.stderr.contains("command not found"), "\(unknown)")

    let missing = try await runCommand(
      Fixtures.deckhand,
      ["exec", "--server", server.endpoint, "--token", server.operatorToken, "nowhere", "--", "true"])
    #expect(missing.status != 0 && missing.stderr.contains("no node nowhere"), "\(missing)")
    server.signal(SIGTERM)
  }
}
