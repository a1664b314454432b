public import DeckhandPlugin
internal import Foundation
internal import Logging
internal import OTel
internal import ServiceLifecycle
internal import Tracing

/// Serves a plugin that exports its spans, for authors who want their
/// plugin's work in the operator's traces.
///
/// ```swift
/// import DeckhandPlugin
/// import DeckhandPluginTracing
/// import Tracing
///
/// struct Hello: Plugin {
///   func apply(_ payload: Google_Protobuf_Any) async throws {
///     try await withSpan("hello.apply") { _ in … }  // a child of the host's call
///   }
///   …
/// }
///
/// PluginTracing.main(Hello())
/// ```
///
/// When the host exports traces it launches plugins with
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (and `OTEL_SERVICE_NAME`, the plugin's
/// name): then swift-otel becomes the plugin's tracer, every call the host
/// makes runs in a server span that continues the host's trace, and the
/// spans go to that endpoint over OTLP/gRPC. Without the variable it serves
/// exactly as ``PluginServer/main(_:options:)`` does.
///
/// A separate product from the SDK: swift-otel brings gRPC and Foundation,
/// which a plugin without traces need not load.
public enum PluginTracing {
  /// Serves `plugin` (traced when the host asks) until the host stops it,
  /// sends the spans left, then exits the process. Call it from synchronous
  /// top-level code, as ``PluginServer/main(_:options:)``.
  public static func main(_ plugin: some Plugin, options: PluginServer.Options = PluginServer.Options()) -> Never {
    PluginServer.runMain { try await serve(plugin, options: options) }
  }

  /// Serves `plugin` until the host stops it, traced when the environment
  /// names an OTLP endpoint; returns once the spans left are sent.
  public static func serve(_ plugin: some Plugin, options: PluginServer.Options = PluginServer.Options()) async throws {
    let environment = ProcessInfo.processInfo.environment
    let endpoint = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"].lazy
      .compactMap { environment[$0] }.first { !$0.isEmpty }
    guard endpoint != nil else {
      try await PluginServer.serve(plugin, options: options)
      return
    }
    // Standard error only: under go-plugin's contract, standard output
    // carries the handshake.
    let logger = Logger(label: "deckhand.plugin.tracing") { StreamLogHandler.standardError(label: $0) }
    var configuration = OTel.Configuration.default
    configuration.logs.enabled = false
    configuration.metrics.enabled = false
    configuration.traces.otlpExporter.protocol = .grpc
    configuration.traces.batchSpanProcessor.scheduleDelay = .seconds(1)
    configuration.diagnosticLogger = .custom(logger)
    configuration.diagnosticLogLevel = .warning
    let exporter = try OTel.bootstrap(configuration: configuration)
    let group = ServiceGroup(
      configuration: ServiceGroupConfiguration(
        services: [
          .init(service: exporter),
          .init(
            service: ServingPlugin(plugin: plugin, options: options),
            successTerminationBehavior: .gracefullyShutdownGroup,
            failureTerminationBehavior: .gracefullyShutdownGroup),
        ],
        logger: logger))
    try await group.run()
  }
}

/// The plugin's server as a service: when it ends (the host stopped the
/// plugin), the group shuts the exporter down, which sends what is left.
private struct ServingPlugin<P: Plugin>: Service {
  let plugin: P
  let options: PluginServer.Options

  func run() async throws {
    try await PluginServer.serve(plugin, options: options)
  }
}
