internal import ArgumentParser
internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandProtocol
internal import DeckhandTelemetry
internal import Foundation
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
internal import SwiftProtobuf

/// What every operator command takes: where the server is and the token.
struct OperatorOptions: ParsableArguments {
  @Option(help: "The server, HOST:PORT. Default: DECKHAND_SERVER, else what deckhand server/dev wrote here.")
  var server: String?

  @Option(help: "An operator token. Default: DECKHAND_TOKEN, else what deckhand server/dev wrote here.")
  var token: String?

  @Flag(help: "Print JSON instead of a table.")
  var json = false

  @OptionGroup var tracing: TracingOptions

  /// Runs `body` with the operator's API, trusting the server only if its
  /// CA matches the token's digest. Errors are printed and exit 1.
  func withControl<Result: Sendable>(
    _ body: (Deckhand_Control_V1_Control.Client<HTTP2ClientTransport.Posix>, Metadata) async throws -> Result
  ) async throws -> Result {
    try await withServer { client, metadata in
      try await body(Deckhand_Control_V1_Control.Client(wrapping: client), metadata)
    }
  }

  /// Runs `body` with a client of the server, trusted as ``withControl(_:)`` says.
  func withServer<Result: Sendable>(
    _ body: (ControlPlaneClient.Client, Metadata) async throws -> Result
  ) async throws -> Result {
    var endpoint = ServerEndpoint(host: "", port: 0)
    do {
      let (resolved, token) = try ClientSettings.resolve(server: server, token: token)
      endpoint = resolved
      // Traced, the command is one root span, and each call a child whose
      // context goes to the server in the call's metadata.
      return try await tracing.traced(TracingOptions.commandName(), serviceName: "deckhand-cli") {
        let ca = try await ControlPlaneClient.trustedCA(at: resolved, token: token)
        let interceptors: [any ClientInterceptor] = try tracing.endpoint() == nil ? [] : [ClientTracingInterceptor()]
        return try await ControlPlaneClient.withClient(resolved, caPEM: ca, interceptors: interceptors) { client in
          try await body(client, ControlPlaneClient.metadata(token))
        }
      }
    } catch {
      let described = ControlPlaneClient.describe(error, endpoint: endpoint)
      FileHandle.standardError.write(Data("deckhand: \(described.message)\n".utf8))
      throw ExitCode(1)
    }
  }

  /// Runs `body` with the job queue's API (see ``withControl(_:)``).
  func withJobs<Result: Sendable>(
    _ body: (Deckhand_Server_V1_Jobs.Client<HTTP2ClientTransport.Posix>, Metadata) async throws -> Result
  ) async throws -> Result {
    try await withServer { client, metadata in
      try await body(Deckhand_Server_V1_Jobs.Client(wrapping: client), metadata)
    }
  }

  /// Prints messages as a JSON array (one object for `single`), with every
  /// field, also those that hold their default value.
  func printJSON(_ messages: [some SwiftProtobuf.Message], single: Bool = false) throws {
    print(try ProtoJSON.server.text(of: messages, single: single))
  }
}

/// A plain text table: a header row and aligned columns.
enum TextTable {
  static func render(_ header: [String], _ rows: [[String]]) -> String {
    var widths = header.map(\.count)
    for row in rows {
      for (index, cell) in row.enumerated() where index < widths.count {
        widths[index] = max(widths[index], cell.count)
      }
    }
    func line(_ cells: [String]) -> String {
      cells.enumerated().map { index, cell in
        index == cells.count - 1 ? cell : cell.padding(toLength: widths[index] + 2, withPad: " ", startingAt: 0)
      }.joined()
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n")
  }

  static func time(_ ms: Int64) -> String {
    guard ms > 0 else { return "-" }
    let seconds = Date().timeIntervalSince1970 - Double(ms) / 1000
    if seconds < 120 { return "\(Int(max(0, seconds)))s ago" }
    if seconds < 7200 { return "\(Int(seconds / 60))m ago" }
    if seconds < 172_800 { return "\(Int(seconds / 3600))h ago" }
    return "\(Int(seconds / 86400))d ago"
  }

  static func labels(_ labels: [String: String]) -> String {
    labels.isEmpty ? "-" : labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
  }
}

/// `KEY=VALUE` arguments (labels, selectors) as a map.
enum KeyValues {
  /// Each of `pairs` split at its first `=`; `flag` names the option in
  /// errors. `KEY=` (an empty value) is refused unless `emptyValues`.
  static func parse(_ pairs: [String], flag: String, emptyValues: Bool = true) throws -> [String: String] {
    var result: [String: String] = [:]
    for pair in pairs {
      let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
      guard parts.count == 2, !parts[0].isEmpty, emptyValues || !parts[1].isEmpty else {
        throw ValidationError("\(flag) \(pair): expected KEY=VALUE")
      }
      result[parts[0]] = parts[1]
    }
    return result
  }
}
