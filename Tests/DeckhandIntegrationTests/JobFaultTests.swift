import DeckhandCore
import DeckhandPluginHost
import DeckhandTestSupport
import Foundation
import Testing

/// Faults that must not wedge a runner: jobs whose processes outlive their
/// command, cancel of processes that left the group, an agent killed with
/// jobs running.
@Suite("Jobs end, with everything they started", .serialized)
struct JobFaultTests {
  let jobs = JobTests()

  /// A `sleep` argument no other process has, to find its process by.
  func uniqueSleep() -> String { "\(Int.random(in: 100_000...999_999)).5" }

  /// A server (with `serverExtra`) and one runner named r1 (with
  /// `labels`) for `body`; the server is stopped after it.
  func withRunner(
    serverExtra: [String] = [], labels: [String] = [], _ body: (ServerProcess, AgentProcess) async throws -> Void
  ) async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next(), extra: serverExtra)
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let runner = try await jobs.agent(node, server, name: "r1", labels: labels)
    defer { runner.signal(SIGKILL) }
    try await runner.waitUntilServing()
    try await body(server, runner)
    server.signal(SIGTERM)
  }

  @Test("an exec job that leaves a background child holding stdout ends within seconds of its command, child ended")
  func backgroundChild() async throws {
    try await withRunner { server, _ in

      let sleep = uniqueSleep()
      // (No --wait: with the defect, the test would wait forever.)
      let id = try await jobs.queue(server, ["--", "sh", "-c", "sleep \(sleep) & echo hi"])
      #expect(await eventually(timeout: .seconds(10)) { await jobs.state(server, id) == "JOB_STATE_SUCCESS" })
      let ran = try await server.cli(["jobs", "watch", id])
      #expect(ran.status == 0 && ran.stdout == "hi\n", "\(ran)")
      #expect(await eventually { processes(withArgument: sleep).isEmpty }, "the background child was ended")

      // The same on a terminal, where the child holds the terminal.
      let terminalSleep = uniqueSleep()
      let onTerminal = try await jobs.queue(server, ["--pty", "--", "sh", "-c", "sleep \(terminalSleep) & echo hi"])
      #expect(await eventually(timeout: .seconds(10)) { await jobs.state(server, onTerminal) == "JOB_STATE_SUCCESS" })
      #expect(await eventually { processes(withArgument: terminalSleep).isEmpty })

      // The slot is free: the next job runs.
      let next = try await server.cli(["jobs", "run", "--wait", "--", "echo", "next"])
      #expect(next.stdout == "next\n", "\(next)")
    }
  }

  @Test(
    "cancel and timeout end a job's processes that called setsid; with cgroups, also one that cleared its environment")
  func setsidChildren() async throws {
    try await withRunner { server, _ in

      let escaped = uniqueSleep()
      let main = uniqueSleep()
      let id = try await jobs.queue(server, ["--", "sh", "-c", "setsid sleep \(escaped) & sleep \(main)"])
      #expect(await eventually(timeout: .seconds(20)) { !processes(withArgument: escaped).isEmpty })
      #expect(try await server.cli(["jobs", "cancel", id]).status == 0)
      #expect(await eventually(timeout: .seconds(20)) { await jobs.state(server, id) == "JOB_STATE_ERROR" })
      #expect(await eventually { processes(withArgument: escaped).isEmpty }, "the setsid child was ended")
      #expect(await eventually { processes(withArgument: main).isEmpty })

      // A timeout does the same, to a child that ignores SIGTERM.
      let stubborn = uniqueSleep()
      let timed = try await server.cli([
        "jobs", "run", "--wait", "--timeout", "1s", "--", "sh", "-c",
        "setsid sh -c 'trap \"\" TERM; sleep \(stubborn)' & sleep 300",
      ])
      #expect(timed.status != 0 && timed.stderr.contains("timed out"), "\(timed)")
      #expect(await eventually(timeout: .seconds(15)) { processes(withArgument: stubborn).isEmpty })

      // Only a cgroup holds a process that dropped the job's marker.
      if ProcessSweep.trackingParent() != nil {
        let unmarked = uniqueSleep()
        let ran = try await server.cli([
          "jobs", "run", "--wait", "--", "sh", "-c", "setsid env -i /bin/sleep \(unmarked) & echo started",
        ])
        #expect(ran.stdout == "started\n", "\(ran)")
        #expect(await eventually { processes(withArgument: unmarked).isEmpty }, "the job's cgroup held it")
      }
    }
  }

  @Test("an agent killed while its jobs run: the next agent on its state directory ends what they left")
  func agentKilled() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let runner = try await jobs.agent(node, server, name: "r1")
    try await runner.waitUntilServing()
    let sleep = uniqueSleep()
    let id = try await jobs.queue(server, ["--", "sh", "-c", "setsid sleep \(sleep) & sleep 300"])
    #expect(await eventually(timeout: .seconds(20)) { !processes(withArgument: sleep).isEmpty })
    #expect(await jobs.state(server, id) == "JOB_STATE_RUNNING")
    runner.signal(SIGKILL)
    _ = await eventually { !runner.process.isRunning }
    #expect(!processes(withArgument: sleep).isEmpty, "a killed agent cannot end its jobs")
    let again = try AgentProcess(node, extra: ["--server", server.endpoint])
    defer { again.signal(SIGKILL) }
    try await again.waitUntilServing()
    #expect(await eventually { processes(withArgument: sleep).isEmpty }, "the next agent ended the leftovers")
    server.signal(SIGTERM)
  }

  @Test("100 queued jobs no node can take do not hold up one any node can take; jobs run warns about them")
  func unassignableJobs() async throws {
    try await withRunner(labels: ["zone=a"]) { server, _ in

      let first = try await server.cli(["jobs", "run", "--label", "gpu=yes", "--", "true"])
      #expect(
        first.status == 0 && first.stderr.contains("warning: no node known to the server can take job")
          && first.stderr.contains("gpu=yes"), "\(first)")
      for _ in 1..<100 { _ = try await jobs.queue(server, ["--label", "gpu=yes", "--", "true"]) }
      let ran = try await server.cli(["jobs", "run", "--", "echo", "ran"])
      #expect(ran.status == 0 && !ran.stderr.contains("warning"), "\(ran)")
      let id = ran.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
      // (No --wait: with the defect, the test would wait forever.)
      #expect(await eventually(timeout: .seconds(10)) { await jobs.state(server, id) == "JOB_STATE_SUCCESS" })

      // A node that matches but is drained is named.
      #expect(try await server.cli(["nodes", "drain", "r1"]).status == 0)
      let drained = try await server.cli(["jobs", "run", "--label", "zone=a", "--", "true"])
      #expect(drained.stderr.contains("is drained (r1)"), "\(drained)")
    }
  }

  @Test("a job that prints past --job-output-limit ends normally; what is stored stops at the limit and says so")
  func outputLimit() async throws {
    try await withRunner(serverExtra: ["--job-output-limit", "1MiB"]) { server, _ in
      let id = try await jobs.queue(server, ["--", "sh", "-c", "head -c 3145728 /dev/zero | tr '\\0' x; echo done"])
      #expect(await eventually(timeout: .seconds(30)) { await jobs.state(server, id) == "JOB_STATE_SUCCESS" })
      let watched = try await server.cli(["jobs", "watch", id])
      #expect(watched.stdout.utf8.count == 1 << 20, "stdout stops at the limit")
      #expect(watched.stderr.contains("output cut") && watched.stderr.contains("1MiB"), "\(watched.stderr)")
      #expect(!watched.stdout.contains("done"))
    }
  }

  @Test("a job that finishes while the server is away, longer than the heartbeat timeout, ends as its command did")
  func finishedWhileServerAway() async throws {
    let root = try TestWorkspace()
    let port = try FreePort.next()
    // A heartbeat timeout longer than the agent's longest reconnect wait
    // (8 s): a restarted server gives running jobs a full timeout, so the
    // rule is met whatever the jitter.
    let timeouts = ["--job-heartbeat-interval", "200ms", "--job-heartbeat-timeout", "9s"]
    var server = try ServerProcess(root: root.root, port: port, extra: timeouts)
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let runner = try await jobs.agent(node, server, name: "r1")
    defer { runner.signal(SIGKILL) }
    try await runner.waitUntilServing()
    let id = try await jobs.queue(server, ["--", "sh", "-c", "echo before; sleep 1; echo after"])
    #expect(await eventually(timeout: .seconds(20)) { await jobs.state(server, id) == "JOB_STATE_RUNNING" })
    server.signal(SIGKILL)
    _ = await eventually { !server.process.isRunning }
    // Away for 10 s: past the job's end and past the heartbeat timeout.
    try await Task.sleep(for: .seconds(10))
    server = try ServerProcess(root: root.root, port: port, extra: timeouts)
    try await server.waitUntilServing()
    let succeeded = await eventually(timeout: .seconds(20)) { await jobs.state(server, id) == "JOB_STATE_SUCCESS" }
    let record = try await jobs.job(server, id)
    #expect(succeeded, "\(record)")
    let watched = try await server.cli(["jobs", "watch", id])
    #expect(watched.stdout == "before\nafter\n", "\(watched)")
    // The slot was freed: the next job runs.
    let next = try await jobs.queue(server, ["--", "true"])
    #expect(await eventually(timeout: .seconds(20)) { await jobs.state(server, next) == "JOB_STATE_SUCCESS" })
    server.signal(SIGTERM)
  }

  @Test(
    "a job force-cancelled while its runner is away ends at once; the runner stops it on return, its other slot goes on"
  )
  func cancelledWhileRunnerAway() async throws {
    let root = try TestWorkspace()
    let port = try FreePort.next()
    let timeouts = ["--job-heartbeat-interval", "200ms", "--job-heartbeat-timeout", "30s"]
    var server = try ServerProcess(root: root.root, port: port, extra: timeouts)
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let runner = try await jobs.agent(node, server, name: "r1", extra: ["--job-slots", "2"])
    defer { runner.signal(SIGKILL) }
    try await runner.waitUntilServing()
    let sleep = uniqueSleep()
    let cancelled = try await jobs.queue(server, ["--", "sleep", sleep])
    let other = try await jobs.queue(server, ["--", "sh", "-c", "sleep 2; echo other"])
    #expect(
      await eventually(timeout: .seconds(20)) {
        let first = await jobs.state(server, cancelled)
        let second = await jobs.state(server, other)
        return first == "JOB_STATE_RUNNING" && second == "JOB_STATE_RUNNING"
      })
    // The runner is away (stopped), and its connection is gone with the
    // server it had.
    runner.signal(SIGSTOP)
    server.signal(SIGKILL)
    _ = await eventually { !server.process.isRunning }
    server = try ServerProcess(root: root.root, port: port, extra: timeouts)
    try await server.waitUntilServing()
    #expect(try await server.cli(["jobs", "cancel", "--force", cancelled]).status == 0)
    #expect(await jobs.state(server, cancelled) == "JOB_STATE_ERROR", "force ends it at once")
    runner.signal(SIGCONT)
    #expect(await eventually(timeout: .seconds(20)) { processes(withArgument: sleep).isEmpty }, "the runner stopped it")
    #expect(await eventually(timeout: .seconds(20)) { await jobs.state(server, other) == "JOB_STATE_SUCCESS" })
    #expect(try await server.cli(["jobs", "watch", other]).stdout == "other\n")
    #expect("\(try await jobs.job(server, cancelled)["error"] ?? .null)".contains("force-cancelled"))
    // Both slots take jobs again.
    let next = [
      try await jobs.queue(server, ["--", "sleep", "1"]), try await jobs.queue(server, ["--", "sleep", "1"]),
    ]
    for id in next {
      #expect(await eventually(timeout: .seconds(20)) { await jobs.state(server, id) == "JOB_STATE_SUCCESS" })
    }
    server.signal(SIGTERM)
  }
}
