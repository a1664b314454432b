internal import ArgumentParser
internal import DeckhandAgent
internal import DeckhandCore
internal import Foundation

/// `deckhand cmd JSON`: one raw request to the agent's command socket.
struct CmdCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cmd",
    abstract: "Send one raw JSON request to the agent's command socket and print the raw response.",
    discussion: "Exits 0 only if the response's Status is 0. Example: deckhand cmd '{\"Command\": \"agent.status\"}'"
  )

  @Argument(help: "The request, a JSON object with a Command field.")
  var request: String

  @OptionGroup var socket: SocketOptions

  func run() throws {
    let response = try socket.send(Array(request.utf8))
    FileHandle.standardOutput.write(Data(response + [UInt8(ascii: "\n")]))
    guard case .object(let object) = try? JSONValue.parse(response),
      case .number(let status) = object["Status"], status == 0
    else { throw ExitCode(1) }
  }
}

/// Where the agent's command socket is: `--socket`, else where `deckhand
/// agent` puts it by default.
struct SocketOptions: ParsableArguments {
  @Option(help: "The agent's command socket. Default: where `deckhand agent` puts it.")
  var socket: String?

  @Option(help: "How long to wait for the answer (e.g. 60s).")
  var timeout: String = "120s"

  var path: String {
    socket.map(HostOptions.absolute) ?? AgentConfiguration.defaults().socketPath
  }

  var timeoutDuration: Duration { DurationText.parse(timeout) ?? .seconds(120) }

  func send(_ request: [UInt8]) throws -> [UInt8] {
    try reportingErrors { try CommandClient.send(request, socket: path, timeout: timeoutDuration) }
  }

  /// Sends a request object; prints the agent's error and exits 1 if the
  /// Status is not 0.
  func call(_ request: [String: JSONValue]) throws -> [String: JSONValue] {
    let object = try reportingErrors { try CommandClient.send(request, socket: path, timeout: timeoutDuration) }
    guard case .number(let status) = object["Status"], status == 0 else {
      let message = if case .string(let text) = object["StatusMessage"] { text } else { "unknown error" }
      let code = if case .number(let code) = object["Status"] { Int(code) } else { -1 }
      FileHandle.standardError.write(Data("deckhand: \(message) (status \(code))\n".utf8))
      throw ExitCode(1)
    }
    return object
  }

  /// Runs `body`; a Deckhand error is printed and becomes exit status 1.
  private func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
      return try body()
    } catch let error as DeckhandError {
      FileHandle.standardError.write(Data("deckhand: \(error.message)\n".utf8))
      throw ExitCode(1)
    }
  }
}
