import DeckhandCore
import DeckhandPluginHost
import DeckhandTestSupport
import Foundation
import Testing

@Suite("deckhand logs: a plugin's output through the server", .serialized)
struct LogsTests {
  func append(_ path: String, _ text: String) throws {
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    try handle.seekToEnd()
    try handle.write(contentsOf: Data(text.utf8))
    try handle.close()
  }

  @Test("backlog with --tail, live lines with --follow, after a crash too; unknown plugins and nodes are refused")
  func logs() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let agent = try await AgentProcess.joined(node, to: server, name: "log-1")
    defer { agent.signal(SIGKILL) }
    let manifest = try node.manifestFile(["name": "echo", "version": "1.0.0", "entrypoint": Fixtures.echo])
    _ = try await agent.call(["Command": "plugins.install", "Manifest": .string(manifest)])
    let stdout = "\(node.paths.stateDirectory)/logs/echo.stdout.log"
    let stderr = "\(node.paths.stateDirectory)/logs/echo.stderr.log"
    #expect(await eventually(timeout: .seconds(10)) { FileManager.default.fileExists(atPath: stdout) })
    for index in 1...5 { try append(stdout, "line \(index)\n") }
    try append(stderr, "bad \u{1b}[31mred\n")
    #expect(
      await eventually(timeout: .seconds(10)) {
        (try? await server.cli(["logs", "log-1", "echo"]))?.stdout.contains("line 5") == true
      })

    let tailed = try await server.cli(["logs", "log-1", "echo", "--tail", "2"])
    #expect(tailed.status == 0, "\(tailed)")
    #expect(tailed.stdout.hasSuffix("line 4\nline 5\n") && !tailed.stdout.contains("line 3"), "\(tailed.stdout)")
    #expect(tailed.stderr.contains("bad \\u{1b}[31mred"), "control characters are escaped: \(tailed.stderr)")

    // Following: a line appended later arrives without asking again.
    let followed = "\(root.root)/follow.out"
    _ = FileManager.default.createFile(atPath: followed, contents: nil)
    let follower = Process()
    follower.executableURL = URL(fileURLWithPath: Fixtures.deckhand)
    follower.arguments = [
      "logs", "log-1", "echo", "--follow", "--tail", "1", "--server", server.endpoint, "--token", server.operatorToken,
    ]
    follower.environment = ["XDG_CONFIG_HOME": "\(root.root)/config", "PATH": "/usr/bin:/bin"]
    follower.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: followed))
    try follower.run()
    defer { follower.terminate() }
    #expect(
      await eventually(timeout: .seconds(10)) {
        ((try? String(contentsOfFile: followed, encoding: .utf8)) ?? "").contains("line 5")
      })
    try append(stdout, "later line\n")
    #expect(
      await eventually(timeout: .seconds(5)) {
        ((try? String(contentsOfFile: followed, encoding: .utf8)) ?? "").contains("later line")
      }, "the follower did not see the new line")

    // After a crash the logs are still there.
    guard case .number(let pid)? = try await agent.plugin("echo")?["Pid"] else {
      Issue.record("echo has no pid")
      return
    }
    kill(Int32(pid), SIGKILL)
    let afterCrash = try await server.cli(["logs", "log-1", "echo", "--tail", "1000"])
    #expect(afterCrash.status == 0 && afterCrash.stdout.contains("later line"), "\(afterCrash)")

    let unknown = try await server.cli(["logs", "log-1", "nothing"])
    #expect(unknown.status != 0 && unknown.stderr.contains("nothing"), "\(unknown)")
    let noNode = try await server.cli(["logs", "ghost", "echo"])
    #expect(noNode.status != 0 && noNode.stderr.contains("ghost"), "\(noNode)")
    let badName = try await server.cli(["logs", "log-1", "../../etc"])
    #expect(badName.status != 0, "\(badName)")
  }
}
