package import GRPCCore
internal import Prometheus
internal import Synchronization

/// Counts every RPC a gRPC server handles by service, method and status
/// code, and times it from its first byte to its trailers.
///
/// The method label comes from the server's own list of methods: a caller
/// naming a method that does not exist is counted as `unknown`, so no
/// caller can grow the set of labels.
package struct GRPCServerMetrics: ServerInterceptor {
  private let registry: MetricsRegistry
  /// Each served method's labels and duration histogram, made once.
  private let known: [MethodDescriptor: (labels: [(String, String)], duration: DurationHistogram)]
  private let unknown: (labels: [(String, String)], duration: DurationHistogram)
  /// Counters by method and code, made on first use (a method answers
  /// few of the codes).
  private let counters = Counters()

  private final class Counters: Sendable {
    let made = Mutex<[String: Counter]>([:])
  }

  /// `services`: what the server serves on `transport` (their methods are
  /// the labels).
  package init<Transport: ServerTransport>(
    registry: MetricsRegistry, services: [any RegistrableRPCService], transport: Transport.Type
  ) {
    self.registry = registry
    var router = RPCRouter<Transport>()
    for service in services { service.registerMethods(with: &router) }
    func series(_ labels: [(String, String)]) -> (labels: [(String, String)], duration: DurationHistogram) {
      (
        labels,
        registry.durations(
          "grpc_server_request_duration_seconds", "Time from a gRPC call's start to its status, by service and method.",
          labels: labels)
      )
    }
    var known: [MethodDescriptor: (labels: [(String, String)], duration: DurationHistogram)] = [:]
    for method in router.methods {
      known[method] = series([("service", method.service.fullyQualifiedService), ("method", method.method)])
    }
    self.known = known
    self.unknown = series([("service", "unknown"), ("method", "unknown")])
  }

  package func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
  ) async throws -> StreamingServerResponse<Output> {
    let start = ContinuousClock.now
    let series = known[context.descriptor] ?? unknown
    let (registry, counters) = (self.registry, self.counters)
    @Sendable func record(_ code: String) {
      series.duration.record(start.duration(to: .now))
      let key = "\(series.labels[0].1)/\(series.labels[1].1)/\(code)"
      let counter = counters.made.withLock { made in
        if let counter = made[key] { return counter }
        let counter = registry.counter(
          "grpc_server_requests_total", "gRPC calls handled, by service, method and status code.",
          labels: series.labels + [("code", code)])
        made[key] = counter
        return counter
      }
      counter.increment()
    }
    let response: StreamingServerResponse<Output>
    do {
      response = try await next(request, context)
    } catch {
      record(Self.code(of: error))
      throw error
    }
    switch response.accepted {
    case .failure(let error):
      record(Self.code(of: error))
      return response
    case .success(var contents):
      let producer = contents.producer
      contents.producer = { writer in
        do {
          let trailers = try await producer(writer)
          record("OK")
          return trailers
        } catch {
          record(Self.code(of: error))
          throw error
        }
      }
      return StreamingServerResponse(accepted: .success(contents))
    }
  }

  /// The status code name gRPC sends for `error` (UNKNOWN for an error
  /// that is not an RPC error).
  package static func code(of error: any Error) -> String {
    guard let error = error as? any RPCErrorConvertible else { return "UNKNOWN" }
    return Self.names[error.rpcErrorCode] ?? "UNKNOWN"
  }

  private static let names: [RPCError.Code: String] = [
    .cancelled: "CANCELLED", .unknown: "UNKNOWN", .invalidArgument: "INVALID_ARGUMENT",
    .deadlineExceeded: "DEADLINE_EXCEEDED", .notFound: "NOT_FOUND", .alreadyExists: "ALREADY_EXISTS",
    .permissionDenied: "PERMISSION_DENIED", .resourceExhausted: "RESOURCE_EXHAUSTED",
    .failedPrecondition: "FAILED_PRECONDITION", .aborted: "ABORTED", .outOfRange: "OUT_OF_RANGE",
    .unimplemented: "UNIMPLEMENTED", .internalError: "INTERNAL", .unavailable: "UNAVAILABLE",
    .dataLoss: "DATA_LOSS", .unauthenticated: "UNAUTHENTICATED",
  ]
}
