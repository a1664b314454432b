package import DeckhandCore
package import Foundation

/// A `deckhand server` process on a port of its own, with a short
/// heartbeat period.
package final class ServerProcess: Sendable {
  package let process: Process
  package let log: String
  package let endpoint: String
  package let stateDirectory: String

  /// A test that ends early (a failed `#require`, a throw) does not leave
  /// its server running.
  deinit {
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
  }

  package init(root: String, port: Int, heartbeat: String = "400ms", extra: [String] = []) throws {
    stateDirectory = "\(root)/server"
    endpoint = "127.0.0.1:\(port)"
    log = "\(root)/server-\(UUID().uuidString.prefix(4)).log"
    _ = FileManager.default.createFile(atPath: log, contents: nil)
    process = Process()
    process.executableURL = URL(fileURLWithPath: Fixtures.deckhand)
    process.arguments =
      [
        "server", "--listen", endpoint, "--state-dir", stateDirectory, "--heartbeat-period", heartbeat,
      ] + (extra.contains("--http-listen") ? [] : ["--http-listen", "127.0.0.1:0"]) + extra
    process.environment = ProcessInfo.processInfo.environment.merging(["XDG_CONFIG_HOME": "\(root)/config"]) { $1 }
    process.standardInput = FileHandle.nullDevice
    let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    process.standardOutput = output
    process.standardError = output
    try process.run()
  }

  package var operatorToken: String {
    (try? String(contentsOfFile: "\(stateDirectory)/operator-token", encoding: .utf8)) ?? ""
  }
  package var workerToken: String {
    (try? String(contentsOfFile: "\(stateDirectory)/worker-token", encoding: .utf8)) ?? ""
  }
  /// `https://127.0.0.1:PORT/` of the web UI, from `serving.json`.
  package var webURL: String? {
    guard let data = FileManager.default.contents(atPath: "\(stateDirectory)/serving.json"),
      case .object(let fields) = try? JSONValue.parse(Array(data)), case .string(let web) = fields["web"]
    else { return nil }
    return web
  }

  package var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

  /// Waits until the server says it serves: its `serving.json` names
  /// this process (a machine-readable signal, not a log line).
  package func waitUntilServing() async throws {
    let path = "\(stateDirectory)/serving.json"
    let pid = process.processIdentifier
    let up = await eventually(timeout: .seconds(20)) {
      guard let data = FileManager.default.contents(atPath: path),
        case .object(let fields) = try? JSONValue.parse(Array(data)), case .number(let serving) = fields["pid"]
      else { return false }
      return Int32(serving) == pid
    }
    if !up {
      throw DeckhandError(.startTimeout, "the server did not start serving within 20 s; its log:\n\(logText)")
    }
  }

  /// A worker join token that lets a joining agent set the keys of
  /// `labels` (`KEY=VALUE`, as `deckhand agent --label` asks) itself; the
  /// first worker token when there are none.
  package func workerToken(allowing labels: [String]) async throws -> String {
    guard !labels.isEmpty else { return workerToken }
    let keys = labels.map { String($0.split(separator: "=")[0]) }
    let made = try await cli(["tokens", "create", "--role", "worker"] + keys.flatMap { ["--allow-label", $0] })
    guard made.status == 0 else {
      throw DeckhandError(.internalError, "deckhand tokens create failed: \(made.stderr)")
    }
    return made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
  }

  /// `deckhand ARGS --server … --token …` (operator token unless given).
  package func cli(_ arguments: [String], token: String? = nil) async throws -> (
    status: Int32, stdout: String, stderr: String
  ) {
    // Before a "--": what follows it is the job's command.
    var arguments = arguments
    let split = arguments.firstIndex(of: "--") ?? arguments.endIndex
    arguments.insert(contentsOf: ["--server", endpoint, "--token", token ?? operatorToken], at: split)
    return try await runCommand(Fixtures.deckhand, arguments)
  }

  /// `--json` output of an operator command, parsed.
  package func json(_ arguments: [String], token: String? = nil) async throws -> JSONValue {
    let result = try await cli(arguments + ["--json"], token: token)
    guard result.status == 0 else {
      throw DeckhandError(.callFailed, "deckhand \(arguments) failed: \(result.stderr)")
    }
    return try JSONValue.parse(Array(result.stdout.utf8))
  }

  package func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }
}
