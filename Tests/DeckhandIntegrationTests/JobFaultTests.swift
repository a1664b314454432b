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

  @Test("an exec job that leaves a background child holding stdout ends within seconds of its command, child ended")
  func backgroundChild() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let runner = try await jobs.agent(node, server, name: "r1")
    defer { runner.signal(SIGKILL) }
    try await runner.waitUntilServing()

    let sleep = uniqueSleep()
    let began = ContinuousClock.now
    let ran = try await server.cli(["jobs", "run", "--wait", "--", "sh", "-c", "sleep \(sleep) & echo hi"])
    let took = began.duration(to: .now)
    #expect(ran.status == 0 && ran.stdout == "hi\n", "\(ran)")
    #expect(took < .seconds(10), "the job ended \(took) after it was queued")
    #expect(await eventually { processes(withArgument: sleep).isEmpty }, "the background child was ended")

    // The same on a terminal, where the child holds the terminal.
    let terminalSleep = uniqueSleep()
    let onTerminal = try await server.cli([
      "jobs", "run", "--wait", "--pty", "--", "sh", "-c", "sleep \(terminalSleep) & echo hi",
    ])
    #expect(onTerminal.status == 0 && onTerminal.stdout.contains("hi"), "\(onTerminal)")
    #expect(await eventually { processes(withArgument: terminalSleep).isEmpty })

    // The slot is free: the next job runs.
    let next = try await server.cli(["jobs", "run", "--wait", "--", "echo", "next"])
    #expect(next.stdout == "next\n", "\(next)")
    server.signal(SIGTERM)
  }

  @Test(
    "cancel and timeout end a job's processes that called setsid; with cgroups, also one that cleared its environment")
  func setsidChildren() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let runner = try await jobs.agent(node, server, name: "r1")
    defer { runner.signal(SIGKILL) }
    try await runner.waitUntilServing()

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
    server.signal(SIGTERM)
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
}
