internal import DeckhandAgent
package import DeckhandCore
internal import DeckhandPluginHost
package import Foundation

/// A `deckhand agent` process on a workspace's folders.
package final class AgentProcess: Sendable {
  package let socket: String
  package let process: Process
  package let log: String

  package init(_ workspace: borrowing TestWorkspace, extra: [String] = []) throws {
    socket = "\(workspace.root)/commands.sock"
    log = "\(workspace.root)/agent-\(UUID().uuidString.prefix(4)).log"
    _ = FileManager.default.createFile(atPath: log, contents: nil)
    process = Process()
    process.executableURL = URL(fileURLWithPath: Fixtures.deckhand)
    process.arguments =
      [
        "agent", "--state-dir", workspace.paths.stateDirectory, "--runtime-dir", workspace.paths.runtimeDirectory,
        "--socket", socket,
      ] + extra
    process.standardInput = FileHandle.nullDevice
    let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    process.standardOutput = output
    process.standardError = output
    try process.run()
  }

  /// An agent joined to `server` as `name` (with the server's first worker
  /// token), serving once this returns.
  package static func joined(
    _ workspace: borrowing TestWorkspace, to server: ServerProcess, name: String, extra: [String] = []
  ) async throws -> AgentProcess {
    let agent = try AgentProcess(
      workspace, extra: ["--server", server.endpoint, "--join-token", server.workerToken, "--node-name", name] + extra)
    try await agent.waitUntilServing()
    return agent
  }

  /// Waits until the agent answers agent.status.
  package func waitUntilServing() async throws {
    let socket = self.socket
    let up = await eventually(timeout: .seconds(20)) {
      (try? CommandClient.send(["Command": "agent.status"], socket: socket, timeout: .seconds(2))) != nil
    }
    if !up {
      let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
      throw DeckhandError(.startTimeout, "the agent did not answer agent.status within 20 s; its log:\n\(text)")
    }
  }

  /// Sends a request on a thread of its own.
  package func call(_ request: [String: JSONValue]) async throws -> [String: JSONValue] {
    let socket = self.socket
    return try await onThread { try CommandClient.send(request, socket: socket, timeout: .seconds(60)) }
  }

  /// The plugins.list entry of `name`.
  package func plugin(_ name: String) async throws -> [String: JSONValue]? {
    guard case .array(let plugins) = try await call(["Command": "plugins.list"])["Plugins"] else { return nil }
    for case .object(let plugin) in plugins where plugin["Name"] == .string(name) { return plugin }
    return nil
  }

  package func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

  package func waitForExit() async -> Bool {
    await eventually(timeout: .seconds(20)) { !self.process.isRunning }
  }
}
