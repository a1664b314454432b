import DeckhandCore
import DeckhandPluginHost
import DeckhandProtocol
import DeckhandTestSupport
import Foundation
import Testing

@Suite("Resource limits")
struct ResourceLimitTests {
  /// Plugin names must be unique per machine here: cgroups are shared.
  static func unique(_ base: String) -> String { "\(base)-\(UUID().uuidString.prefix(6).lowercased())" }

  @Test("this machine's mechanism is detected (cgroup v1 with memory, pids and cpu here)")
  func mechanism() {
    let control = ResourceControl.machine
    #expect(control.mechanism != .rlimits, "expected a writable cgroup hierarchy on the test machine")
  }

  @Test("a plugin that allocates past its memory limit is killed, reported as OOM, and restarted")
  func memory() async throws {
    let workspace = try TestWorkspace()
    let name = Self.unique("hog")
    let manifest = try workspace.manifest(
      Fixtures.testPlugin(
        name, args: ["--allocate-mb", "400"], tag: name,
        extra: ["limits": ["memory_mb": 64], "restart": ["initial_backoff_s": 0.2, "max_backoff_s": 1]]))
    let log = EventLog()
    let supervisor = PluginSupervisor(manifest: manifest, launcher: workspace.launcher) { log.append($0) }
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await supervisor.run() }
      #expect(await eventually(timeout: .seconds(30)) { log.count(.launched) >= 2 })
      supervisor.requestStop()
      try await group.waitForAll()
    }
    let exit = try #require(log.of(.exited).first)
    #expect(exit.outOfMemory, "\(exit)")
    #expect(exit.exit == .signaled(signal: SIGKILL))
    #expect(exit.reason?.contains("OOM") == true, "\(exit)")
    #expect(log.count(.launched) >= 2)
    for group in ResourceControl.machine.existing(plugin: name).groups.values {
      #expect(!FileManager.default.fileExists(atPath: group), "\(group)")
    }
    for leftover in processes(withArgument: name) { kill(leftover, SIGKILL) }
  }

  @Test("a plugin that forks past its pids limit is held to it; nofile is set; the cgroup goes with the plugin")
  func pidsAndFiles() async throws {
    let workspace = try TestWorkspace()
    let name = Self.unique("forky")
    let manifest = try workspace.manifest(
      Fixtures.testPlugin(
        name, args: ["--fork", "40"], tag: name, extra: ["limits": ["pids": 16, "nofile": 256, "cpu_percent": 50]]))
    let plugin = try await workspace.launcher.launch(manifest)
    let applied = try #require(plugin.limits)
    let status = try await LeanPluginTransport().withConnection(to: plugin.address) { connection in
      try await connection.start(try plugin.startRequest(), timeout: .seconds(10))
      return try await connection.getStatus(data: "x", timeout: .seconds(5))
    }
    let forked = status.results.compactMap { $0.hasPrefix("forked=") ? Int($0.dropFirst(7)) : nil }.first
    #expect(forked != nil && forked! < 40, "\(status.results)")
    let limits = try String(contentsOfFile: "/proc/\(plugin.pid)/limits", encoding: .utf8)
    #expect(limits.split(separator: "\n").contains { $0.hasPrefix("Max open files") && $0.contains(" 256 ") })
    if applied.mechanism == .cgroupV1 {
      let pidsGroup = try #require(applied.groups["pids"])
      let current =
        Int(
          try String(contentsOfFile: "\(pidsGroup)/pids.current", encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)) ?? 0
      #expect(current <= 16)
      let quota = try String(contentsOfFile: "\(applied.groups["cpu"]!)/cpu.cfs_quota_us", encoding: .utf8)
      #expect(quota.trimmingCharacters(in: .whitespacesAndNewlines) == "50000")
    }
    _ = await plugin.stop(using: nil, cleanup: false)
    for group in applied.groups.values { #expect(!FileManager.default.fileExists(atPath: group), "\(group)") }
    #expect(processes(withArgument: name).isEmpty)
  }

  @Test("limits in a manifest are checked like every other field")
  func manifestLimits() throws {
    let workspace = try TestWorkspace()
    #expect(throws: DeckhandError.self) {
      try workspace.manifest(["name": "x", "version": "1", "entrypoint": "/bin/true", "limits": ["memory_mb": 0]])
    }
    #expect(throws: DeckhandError.self) {
      try workspace.manifest(["name": "x", "version": "1", "entrypoint": "/bin/true", "limits": ["disk_mb": 5]])
    }
    let manifest = try workspace.manifest(
      ["name": "x", "version": "1", "entrypoint": "/bin/true", "limits": ["memory_mb": 128, "pids": 64]])
    #expect(manifest.limits.memoryMB == 128 && manifest.limits.pids == 64 && manifest.limits.nofile == nil)
  }
}
