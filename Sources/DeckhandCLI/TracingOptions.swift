internal import ArgumentParser
internal import DeckhandTelemetry
internal import Foundation
internal import Logging
internal import ServiceLifecycle
internal import Tracing

/// `--otlp-endpoint`, on the server, the agent, `deckhand dev` and every
/// operator command: where this process sends its spans.
struct TracingOptions: ParsableArguments {
  @Option(
    help: """
      Export traces over OTLP/gRPC to this URL, e.g. http://127.0.0.1:4317. Default: \
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT; off without any.
      """)
  var otlpEndpoint: String?

  /// The endpoint in effect: the flag, the standard environment variables,
  /// then `fileValue` (a config file's `otlp_endpoint`); nil: off.
  func endpoint(fileValue: String? = nil) throws -> String? {
    let environment = ProcessInfo.processInfo.environment
    if let endpoint = try TraceExport.endpoint(flag: otlpEndpoint, environment: environment) { return endpoint }
    return try TraceExport.endpoint(flag: fileValue, environment: [:])
  }

  /// Runs a short-lived command's `body` in a root span named `name`
  /// when tracing is on, and sends its spans before returning (off: runs
  /// `body` alone).
  func traced<Result: Sendable>(
    _ name: String, serviceName: String, _ body: () async throws -> Result
  ) async throws -> Result {
    guard let endpoint = try endpoint() else { return try await body() }
    let logger = Logger(label: "deckhand.tracing")
    let exporter = try TraceExport.bootstrap(serviceName: serviceName, endpoint: endpoint, logger: logger)
    let group = ServiceGroup(services: [exporter], logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
      tasks.addTask { try await group.run() }
      let result: Swift.Result<Result, any Error>
      do {
        result = .success(try await withSpan(name, ofKind: .client) { _ in try await body() })
      } catch {
        result = .failure(error)
      }
      // The exporter sends what is left as it shuts down.
      await group.triggerGracefulShutdown()
      try await tasks.waitForAll()
      return try result.get()
    }
  }

  /// The command's name for its root span: `deckhand` and its subcommands
  /// as typed (`deckhand jobs run`), never the arguments, which may hold
  /// secrets.
  static func commandName(_ arguments: [String] = CommandLine.arguments) -> String {
    var names = ["deckhand"]
    var command: any ParsableCommand.Type = DeckhandCommand.self
    for argument in arguments.dropFirst() {
      guard
        let subcommand = command.configuration.subcommands.first(where: {
          $0._commandName == argument || $0.configuration.aliases.contains(argument)
        })
      else { break }
      names.append(subcommand._commandName)
      command = subcommand
    }
    return names.joined(separator: " ")
  }
}
