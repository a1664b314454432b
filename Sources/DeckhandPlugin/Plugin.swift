public import DeckhandCore
public import SwiftProtobuf

/// A Deckhand plugin: what a Swift author implements.
///
/// ```swift
/// import DeckhandPlugin
///
/// struct Hello: Plugin {
///   func start(_ context: StartContext) async throws {}
///   func status(data: String?) async throws -> PluginStatus { PluginStatus(code: 0, results: ["ok"]) }
/// }
///
/// @main enum Main {
///   static func main() async throws { try await PluginServer.serve(Hello()) }
/// }
/// ```
///
/// The host calls ``start(_:)`` once after every launch, ``status(data:)``
/// for health checks (no data) and queries (with data), ``apply(_:)`` with
/// payloads, and ``stop(cleanup:)`` before it ends the process.
public protocol Plugin: Sendable {
  /// Begins the plugin's work with its state directory and configuration.
  func start(_ context: StartContext) async throws
  /// Ends the plugin's work. With `cleanup`, the plugin is being removed:
  /// delete what it made outside its state directory. The process ends
  /// after the reply.
  func stop(cleanup: Bool) async throws
  /// Reports health (`data` nil: code 0 is healthy) or answers a query.
  func status(data: String?) async throws -> PluginStatus
  /// Acts on a payload from the host.
  func apply(_ payload: Google_Protobuf_Any) async throws
  /// Answers a request to a command this plugin put on the agent's command
  /// socket with ``HostClient/registerCommand(_:)``. `request` is the
  /// whole request object (`Command` included); the returned fields make
  /// the answer, to which the agent adds `Status` 0. A thrown error gives
  /// the caller Status 105 with its text.
  func command(_ name: String, request: [String: JSONValue]) async throws -> [String: JSONValue]
}

extension Plugin {
  /// Does nothing.
  public func stop(cleanup: Bool) async throws {}
  /// Accepts and ignores the payload.
  public func apply(_ payload: Google_Protobuf_Any) async throws {}
  /// Refuses: the plugin registered no commands.
  public func command(_ name: String, request: [String: JSONValue]) async throws -> [String: JSONValue] {
    throw DeckhandError(.notFound, "this plugin has no handler for command \(name)")
  }
}
