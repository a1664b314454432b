import DeckhandCore
import DeckhandPluginHost
import DeckhandTestSupport
import Foundation
import Testing

@Suite("Stopping plugins")
struct PluginStopTests {
  @Test("a plugin that ignores Stop and has a child: both are killed at the deadline")
  func ignoresStop() async throws {
    let workspace = try TestWorkspace()
    let tag = UUID().uuidString
    let childFile = "\(workspace.root)/child.pid"
    let manifest = try workspace.manifest(
      Fixtures.testPlugin(
        "stubborn", args: ["--ignore-stop", "--spawn-child", childFile], tag: tag,
        extra: ["timeouts": ["stop_s": 1]]))
    let plugin = try await workspace.launcher.launch(manifest)
    let outcome = try await GRPCPluginTransport().withConnection(to: plugin.address) { connection in
      try await connection.start(try plugin.startRequest(), timeout: .seconds(5))
      return await plugin.stop(using: connection, cleanup: false)
    }
    let child = try #require(Int32(try String(contentsOfFile: childFile, encoding: .utf8)))
    #expect(!outcome.replied)
    #expect(outcome.elapsed >= .seconds(1) && outcome.elapsed < .seconds(5), "\(outcome.elapsed)")
    #expect(outcome.exit == .signaled(signal: 9))
    #expect(await eventually { !isAlive(child) }, "child \(child) survived")
    #expect(processes(withArgument: tag).isEmpty)
    #expect(kill(-plugin.pid, 0) == -1 && errno == ESRCH)
    if case .unix(let socket) = plugin.address { #expect(!FileManager.default.fileExists(atPath: socket)) }
  }

  @Test("a plugin that answers Stop is stopped at once, and no zombie is left")
  func answersStop() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest(["name": "echo", "version": "1", "entrypoint": Fixtures.echo])
    let plugin = try await workspace.launcher.launch(manifest)
    let outcome = await
      (try GRPCPluginTransport().withConnection(to: plugin.address) { connection in
        await plugin.stop(using: connection, cleanup: false)
      })
    #expect(outcome.replied)
    // Well inside the 10 s deadline (loose: a busy two-core machine).
    #expect(outcome.elapsed < .seconds(5))
    #expect(outcome.exit == .exited(code: 0))
    // Reaped: not even a zombie entry is left.
    #expect(!FileManager.default.fileExists(atPath: "/proc/\(plugin.pid)"))
  }

  @Test("Stop with cleanup removes the state directory; without it, it stays", arguments: [true, false])
  func cleanup(cleanup: Bool) async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifest(["name": "tidy", "version": "1", "entrypoint": Fixtures.echo])
    let plugin = try await workspace.launcher.launch(manifest)
    let stateDirectory = try workspace.paths.pluginStateDirectory("tidy")
    try "kept".write(toFile: "\(stateDirectory)/data", atomically: true, encoding: .utf8)
    _ = await
      (try GRPCPluginTransport().withConnection(to: plugin.address) { connection in
        await plugin.stop(using: connection, cleanup: cleanup)
      })
    #expect(FileManager.default.fileExists(atPath: "\(stateDirectory)/data") == !cleanup)
  }
}
