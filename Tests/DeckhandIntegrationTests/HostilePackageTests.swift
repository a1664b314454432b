import DeckhandClient
import DeckhandCore
import DeckhandPluginHost
import DeckhandTestSupport
import Foundation
import Testing

@Suite("Hostile packages through a real deployment", .serialized)
struct HostilePackageTests {
  /// echo@`version` with `hostile` entries after its plugin.json and binary.
  static func package(
    in root: String, version: String, _ hostile: (inout TarWriter) -> Void
  ) throws -> String {
    var tar = TarWriter()
    tar.add("./plugin.json", content: Array(#"{"name": "echo", "version": "\#(version)", "entrypoint": "echo"}"#.utf8))
    tar.add("./echo", mode: 0o755, content: Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.echo))))
    hostile(&tar)
    let path = "\(root)/echo-\(version).tar.gz"
    try tar.writeGzip(to: path)
    return path
  }

  /// The state and message of the agent's task for echo@`version`.
  static func task(_ server: ServerProcess, version: String) async -> (state: String, message: String)? {
    guard case .array(let tasks)? = try? await server.json(["tasks", "ls"]) else { return nil }
    for case .object(let fields) in tasks where fields["version"] == .string(version) {
      guard case .string(let state) = fields["state"] else { continue }
      let message: String = if case .string(let text) = fields["message"] { text } else { "" }
      return (state, message)
    }
    return nil
  }

  @Test(
    "escaping, set-uid and link-out packages fail their task saying why, write nothing outside, and a good one deploys after them"
  )
  func hostilePackages() async throws {
    let root = try TestWorkspace()
    let server = try ServerProcess(root: root.root, port: try FreePort.next())
    try await server.waitUntilServing()
    let node = try TestWorkspace()
    let agent = try AgentProcess(
      node,
      extra: [
        "--server", server.endpoint, "--join-token", try await server.workerToken(allowing: ["role=web"]),
        "--node-name", "n1", "--label", "role=web",
      ])
    defer { agent.signal(SIGKILL) }
    try await agent.waitUntilServing()

    let outside = root.root + "/pwned"
    let cases: [(version: String, expected: String, add: (inout TarWriter) -> Void)] = [
      (
        "9.0.1", "leaves the package",
        { $0.add(String(repeating: "../", count: 12) + outside.dropFirst(), content: [1]) }
      ),
      ("9.0.2", "set-uid", { $0.add("./bin/root", mode: 0o4755, content: [1]) }),
      ("9.0.3", "points outside", { $0.add("./escape", type: "2", link: "../../../../..") }),
      ("9.0.4", "absolute", { $0.add(outside, content: [1]) }),
    ]
    for hostile in cases {
      let path = try Self.package(in: root.root, version: hostile.version, hostile.add)
      let pushed = try await server.cli(["artifacts", "push", path])
      #expect(pushed.status == 0, "\(pushed)")
      #expect(try await server.cli(["deploy", "echo@\(hostile.version)", "--selector", "role=web"]).status == 0)
      let failed = await eventually(timeout: .seconds(30)) {
        await Self.task(server, version: hostile.version)?.state == "TASK_STATE_FAILED"
      }
      let message = await Self.task(server, version: hostile.version)?.message ?? ""
      #expect(failed, "\(hostile.version): \(message)")
      #expect(message.contains("refused") && message.contains(hostile.expected), "\(hostile.version): \(message)")
      #expect(!FileManager.default.fileExists(atPath: outside))
    }
    // Nothing half-unpacked is left among the agent's artifacts.
    let artifacts = node.paths.stateDirectory + "/artifacts"
    let left = (try? FileManager.default.contentsOfDirectory(atPath: artifacts)) ?? []
    #expect(left.allSatisfy { !$0.contains(".partial-") }, "\(left)")

    let good = try Self.package(in: root.root, version: "1.0.0") { _ in }
    #expect(try await server.cli(["artifacts", "push", good]).status == 0)
    #expect(try await server.cli(["deploy", "echo@1.0.0", "--selector", "role=web"]).status == 0)
    let running = await eventually(timeout: .seconds(30)) {
      await Self.task(server, version: "1.0.0")?.state == "TASK_STATE_RUNNING"
    }
    let last = await Self.task(server, version: "1.0.0")
    #expect(running, "\(String(describing: last))")
  }
}
