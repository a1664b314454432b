import DeckhandCore
import DeckhandPluginHost
import DeckhandTestSupport
import Foundation
import Testing

@Suite("The deckhand command")
struct CommandLineTests {
  @Test("deckhand-bench offers the four benchmarks by the names the README gives")
  func benchSubcommands() async throws {
    let result = try await runCommand("\(Fixtures.binDirectory)/deckhand-bench", ["--help"])
    #expect(result.status == 0, "\(result.stderr)")
    for name in ["dispatcher", "jobs", "commands", "hostapi"] {
      #expect(result.stdout.contains("  \(name) "), "\(name) missing from: \(result.stdout)")
    }
  }

  @Test(
    "--help before the command's -- prints help and reaches no server",
    arguments: [["jobs", "run", "--help"], ["jobs", "run", "-h"], ["exec", "web-1", "--help"]])
  func passthroughHelp(arguments: [String]) async throws {
    // No server at this address: reaching for one would fail.
    let result = try await runCommand(
      Fixtures.deckhand, arguments + ["--server", "127.0.0.1:1", "--token", "x"],
      environment: ["XDG_CONFIG_HOME": "/nonexistent"])
    #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
    #expect(result.stdout.contains("USAGE:"), "\(result.stdout)")
    #expect(!result.stderr.contains("cannot reach"), "\(result.stderr)")
  }

  @Test("--log-format json writes one JSON object a line; a bad --log-level is refused naming the levels")
  func jsonLogs() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(
      root: root.root, port: try FreePort.next(), extra: ["--log-format", "json", "--log-level", "debug"])
    try await server.waitUntilServing()
    server.signal(SIGTERM)
    _ = await eventually(timeout: .seconds(10)) { !server.process.isRunning }
    let lines = server.logText.split(separator: "\n")
    #expect(!lines.isEmpty)
    for line in lines {
      let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
      #expect(object?["level"] != nil && object?["message"] != nil, "\(line)")
    }
    #expect(lines.contains { $0.contains(#""message":"server serving""#) }, "\(server.logText)")
    let refused = try await runCommand(Fixtures.deckhand, ["agent", "--log-level", "loud", "--state-dir", root.root])
    #expect(refused.status != 0 && refused.stderr.contains("--log-level loud"), "\(refused)")
  }

  @Test("plugin check --json reports every check and exits 0 for a good plugin")
  func checkJSON() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifestFile(["name": "echo", "version": "1.0.0", "entrypoint": Fixtures.echo])
    let result = try await runCommand(
      Fixtures.deckhand,
      [
        "plugin", "check", manifest, "--json", "--state-dir", workspace.paths.stateDirectory, "--runtime-dir",
        workspace.paths.runtimeDirectory,
      ])
    #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
    let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    #expect(json["ok"] as? Bool == true)
    #expect(json["plugin"] as? String == "echo")
    #expect(json["protocol"] as? String == "guest-agent")
    let checks = try #require(json["checks"] as? [[String: Any]])
    #expect(checks.count == 7)
    #expect(checks.allSatisfy { $0["ok"] as? Bool == true && $0["name"] is String && $0["detail"] is String })
  }

  @Test("plugin check exits 1 when a check fails, and 2 for a broken manifest")
  func checkFailures() async throws {
    let workspace = try TestWorkspace()
    let failing = try workspace.manifestFile(
      Fixtures.testPlugin(
        "stubborn", args: ["--ignore-stop"], tag: UUID().uuidString, extra: ["timeouts": ["stop_s": 0.3]]))
    let result = try await runCommand(
      Fixtures.deckhand,
      [
        "plugin", "check", failing, "--json", "--state-dir", workspace.paths.stateDirectory, "--runtime-dir",
        workspace.paths.runtimeDirectory,
      ])
    #expect(result.status == 1)
    #expect(result.stdout.contains(#""name":"stop","ok":false"#), "\(result.stdout)")

    let broken = try workspace.write("broken.json", #"{"name": "x"}"#)
    let brokenResult = try await runCommand(Fixtures.deckhand, ["plugin", "check", broken])
    #expect(brokenResult.status == 2)
    #expect(brokenResult.stderr.contains(broken))
    #expect(brokenResult.stderr.contains(#"field "entrypoint": is required"#))
  }

  @Test("plugin run --events json prints one event a line and stops gracefully on SIGTERM")
  func runEvents() async throws {
    let workspace = try TestWorkspace()
    let manifest = try workspace.manifestFile(["name": "echo", "version": "1.0.0", "entrypoint": Fixtures.echo])
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Fixtures.deckhand)
    process.arguments = [
      "plugin", "run", manifest, "--events", "json", "--state-dir", workspace.paths.stateDirectory,
      "--runtime-dir", workspace.paths.runtimeDirectory,
    ]
    let output = try workspace.write("events.jsonl", "")
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
    try process.run()
    let healthy = await eventually {
      ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").contains(#""event":"healthy""#)
    }
    #expect(healthy)
    process.terminate()
    #expect(await eventually { !process.isRunning })
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
    let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
    let events = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    #expect(events.map { $0["event"] as? String } == ["launched", "ready", "healthy", "stopped"])
    #expect(events.allSatisfy { $0["plugin"] as? String == "echo" && $0["pid"] is Int })
    #expect(events.last?["replied"] as? Bool == true)
    let pid = try #require(events.first?["pid"] as? Int)
    #expect(!isAlive(Int32(pid)))
  }
}
