internal import DeckhandCore
internal import Foundation
package import Logging
internal import OTel
package import ServiceLifecycle
internal import Synchronization
internal import Tracing

/// Exporting this process's spans over OTLP/gRPC with swift-otel: off
/// unless an endpoint is given (`--otlp-endpoint`, else the standard
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`).
///
/// Off, nothing is bootstrapped: swift-distributed-tracing's no-op tracer
/// stays in place, no trace context is ever current, and the places that
/// carry one (gRPC metadata, jobs, plugin calls) find none and skip.
package enum TraceExport {
  /// The standard variables, most specific first.
  package static let environmentKeys = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]

  /// The endpoint in effect: `flag`, else the environment's; nil when
  /// tracing is off.
  ///
  /// - Throws: `configurationInvalid` for an endpoint that is not an
  ///   `http://` or `https://` URL with a host.
  package static func endpoint(flag: String?, environment: [String: String]) throws -> String? {
    let value = flag ?? environmentKeys.lazy.compactMap { environment[$0] }.first { !$0.isEmpty }
    guard let value, !value.isEmpty else { return nil }
    try check(value)
    return value
  }

  /// Refuses what swift-otel's gRPC exporter would fail on later, with a
  /// message that names the setting.
  static func check(_ endpoint: String) throws {
    let schemes = ["http://", "https://"]
    guard let scheme = schemes.first(where: { endpoint.lowercased().hasPrefix($0) }) else {
      throw DeckhandError(
        .configurationInvalid,
        "OTLP endpoint \(endpoint): expected http://HOST:PORT or https://HOST:PORT (OTLP over gRPC, port 4317 by default)"
      )
    }
    let rest = endpoint.dropFirst(scheme.count)
    let host = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
    guard !host.isEmpty, !host.hasPrefix(":") else {
      throw DeckhandError(.configurationInvalid, "OTLP endpoint \(endpoint): no host")
    }
  }

  private static let bootstrapped = Mutex(false)

  /// Makes swift-otel's tracer the process's tracer and returns the service
  /// that batches and sends its spans to `endpoint` over OTLP/gRPC. Run the
  /// service beside the process's others: on graceful shutdown it sends
  /// what is left before it returns.
  ///
  /// The flag wins over the environment's endpoint; the other standard
  /// variables (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_TRACES_SAMPLER`, the
  /// certificate paths) apply as swift-otel reads them.
  ///
  /// - Parameters:
  ///   - serviceName: `service.name` of every span (`deckhand-server`, …).
  ///   - logger: Where swift-otel reports failed exports (as warnings).
  /// - Throws: `configurationInvalid` when called twice in one process, or
  ///   when the environment asks for an exporter or protocol this build
  ///   lacks (only OTLP over gRPC is built in).
  package static func bootstrap(serviceName: String, endpoint: String, logger: Logger) throws -> any Service {
    try check(endpoint)
    let first = bootstrapped.withLock { done in
      defer { done = true }
      return !done
    }
    guard first else {
      throw DeckhandError(.configurationInvalid, "tracing is already set up in this process")
    }
    var configuration = OTel.Configuration.default
    configuration.serviceName = serviceName
    configuration.logs.enabled = false
    configuration.metrics.enabled = false
    configuration.traces.enabled = true
    configuration.traces.exporter = .otlp
    configuration.traces.otlpExporter.endpoint = endpoint
    configuration.traces.otlpExporter.protocol = .grpc
    // Spans leave within a second (the default waits five), so that a
    // trace is whole soon after a command returns.
    configuration.traces.batchSpanProcessor.scheduleDelay = .seconds(1)
    configuration.diagnosticLogger = .custom(logger)
    configuration.diagnosticLogLevel = .warning
    var environment = ProcessInfo.processInfo.environment
    for key in environmentKeys { environment[key] = nil }
    do {
      return try OTel.bootstrap(configuration: configuration, environment: environment)
    } catch {
      throw DeckhandError(
        .configurationInvalid,
        "cannot export traces to \(endpoint): \(error) (Deckhand exports OTLP over gRPC; OTEL_EXPORTER_OTLP_PROTOCOL, if set, must be grpc)",
        cause: error)
    }
  }

  /// Adds `trace_id` and `span_id` to every log entry made inside a span
  /// (nothing when tracing is off).
  package static var loggingMetadataProvider: Logger.MetadataProvider {
    OTel.makeLoggingMetadataProvider()
  }
}
