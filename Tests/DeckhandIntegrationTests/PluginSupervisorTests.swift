import DeckhandCore
import DeckhandGRPC
import DeckhandPluginHost
import DeckhandTestSupport
import Foundation
import NIOCore
import Synchronization
import Testing

/// Counts calls from any thread.
final class CallCounter: Sendable {
  private let count = Mutex(0)
  func increment() { count.withLock { $0 += 1 } }
  var value: Int { count.withLock { $0 } }
}

@Suite("Supervising plugins")
struct PluginSupervisorTests {
  /// Runs a supervisor in a child task until `body` returns, then stops it
  /// and waits for `run()` to return.
  func supervise(
    _ manifest: PluginManifest, workspace: borrowing TestWorkspace,
    _ body: (PluginSupervisor, EventLog) async throws -> Void
  ) async throws {
    let log = EventLog()
    let supervisor = PluginSupervisor(manifest: manifest, launcher: workspace.launcher) { log.append($0) }
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await supervisor.run() }
      do {
        try await body(supervisor, log)
      } catch {
        supervisor.requestStop()
        throw error
      }
      supervisor.requestStop()
      try await group.waitForAll()
    }
    #expect(log.all.last?.event == .stopped, "\(log.all.map(\.event))")
  }

  @Test("a plugin socket served by a process outside the plugin's tree is refused, not called")
  func socketTakenOver() async throws {
    let workspace = try TestWorkspace()
    let tag = UUID().uuidString
    // Another process (this test, standing for another plugin of the same
    // user) listens in the plugin's socket folder; the plugin names it.
    let folder = try workspace.paths.socketFolder("victim")
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    var router = LeanGRPCRouter()
    let called = CallCounter()
    router.register("/plugin_comm.GuestAgentPlugin/Start") { _, promise in
      called.increment()
      promise.succeed(ByteBuffer())
    }
    let squatter = try await LeanGRPCServer.bind(unixSocket: "\(folder)/plugin.sock", router: router)
    defer { squatter.close() }
    let script = try workspace.write(
      "victim.sh", "#!/bin/sh\necho '1|1|unix|\(folder)/plugin.sock|grpc|'\nexec sleep 30 \(tag)\n", executable: true)
    let manifest = try workspace.manifest([
      "name": "victim", "version": "1", "entrypoint": script, "protocol": "go-plugin",
      "restart": ["initial_backoff_s": 5, "max_backoff_s": 5],
    ])
    try await supervise(manifest, workspace: workspace) { _, log in
      #expect(await eventually(timeout: .seconds(20)) { log.count(.launchFailed) >= 1 })
      let failure = log.of(.launchFailed).first?.error ?? ""
      #expect(failure.contains("served by pid \(getpid())") && failure.contains("another process"), "\(failure)")
      #expect(called.value == 0, "the impostor got no Start")
      #expect(processes(withArgument: "sleep 30 \(tag)").isEmpty, "the plugin was ended")
    }
  }

  @Test("a plugin that crashes leaves no child behind, also one that called setsid, before it is restarted")
  func crashLeavesNothing() async throws {
    let workspace = try TestWorkspace()
    let childFile = workspace.root + "/child.pid"
    // Foundation's Process starts the child in a session of its own.
    let manifest = try workspace.manifest(
      Fixtures.testPlugin(
        "litter", args: ["--spawn-child", childFile, "--crash-after-ms", "150"], tag: UUID().uuidString,
        extra: ["restart": ["initial_backoff_s": 0.05, "max_backoff_s": 0.2]]))
    let children = Mutex<Set<Int32>>([])
    try await supervise(manifest, workspace: workspace) { _, log in
      while log.count(.exited) < 4 {
        if let text = try? String(contentsOfFile: childFile, encoding: .utf8), let pid = Int32(text) {
          children.withLock { _ = $0.insert(pid) }
        }
        try await Task.sleep(for: .milliseconds(10))
      }
    }
    let seen = children.withLock { $0 }
    #expect(seen.count >= 3, "children seen: \(seen)")
    #expect(
      await eventually(timeout: .seconds(5)) { seen.allSatisfy { !isAlive($0) } }, "alive: \(seen.filter(isAlive))")
  }

  @Test("a plugin that crashes is restarted with growing backoff, and its stderr is reported")
  func crashLoop() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest(
      Fixtures.testPlugin(
        "crashy", args: ["--crash-after-ms", "50"], tag: UUID().uuidString,
        extra: ["restart": ["initial_backoff_s": 0.1, "max_backoff_s": 2]]))
    try await supervise(manifest, workspace: workspace) { _, log in
      #expect(await eventually(timeout: .seconds(30)) { log.count(.restarting) >= 3 })
      let backoffs = log.of(.restarting).prefix(3).compactMap(\.backoff)
      #expect(backoffs.count == 3)
      #expect(backoffs == backoffs.sorted() && Set(backoffs).count == 3, "\(backoffs)")
      let exit = try #require(log.of(.exited).first)
      #expect(exit.exit == .exited(code: 3))
      #expect(exit.lastLines.stderr == ["test plugin: crashing on purpose"])
      let pids = Set(log.of(.launched).compactMap(\.pid))
      #expect(pids.count == log.count(.launched))
    }
  }

  @Test("a plugin that turns unhealthy is killed and restarted")
  func unhealthy() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest(
      Fixtures.testPlugin(
        "sickly", args: ["--unhealthy-after", "1"], tag: UUID().uuidString,
        extra: [
          "health": ["interval_s": 0.05, "timeout_s": 1, "failures": 2],
          "restart": ["initial_backoff_s": 0.05, "max_backoff_s": 0.1],
        ]))
    try await supervise(manifest, workspace: workspace) { _, log in
      #expect(await eventually { log.count(.launched) >= 2 })
      let kinds = log.all.map(\.event)
      let expected: [PluginEvent.Kind] = [.launched, .ready, .healthy, .healthFailed, .unhealthy, .exited, .restarting]
      #expect(Array(kinds.prefix(expected.count)) == expected, "\(kinds)")
      #expect(log.of(.unhealthy).first?.healthCode == 1)
      #expect(log.of(.exited).first?.reason == "unhealthy")
      #expect(log.of(.exited).first?.exit == .signaled(signal: 9))
    }
  }

  @Test("a stop request stops the plugin gracefully (cleanup false) and run() returns")
  func gracefulStop() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest(["name": "echo", "version": "1", "entrypoint": Fixtures.echo])
    var pid: Int32?
    try await supervise(manifest, workspace: workspace) { _, log in
      #expect(await eventually { log.count(.healthy) == 1 })
      pid = log.of(.launched).first?.pid
    }
    let stopped = try #require(pid)
    #expect(!isAlive(stopped))
    #expect(FileManager.default.fileExists(atPath: try workspace.paths.pluginStateDirectory("echo")))
  }

  @Test("a plugin that fails to launch is retried with backoff")
  func launchFailures() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest(
      Fixtures.testPlugin(
        "quitter", args: ["--exit-without-serving"], tag: UUID().uuidString,
        extra: ["restart": ["initial_backoff_s": 0.05, "max_backoff_s": 0.2]]))
    try await supervise(manifest, workspace: workspace) { _, log in
      #expect(await eventually { log.count(.launchFailed) >= 3 })
      let text = try #require(log.of(.launchFailed).first?.error)
      #expect(text.contains("giving up before serving"))
    }
  }
}
