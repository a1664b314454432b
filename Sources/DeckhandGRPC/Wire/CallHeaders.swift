/// Request headers that a lean server hands to its handlers: only those a
/// router asks for (``LeanGRPCRouter/passedHeaders``), so that a server that
/// asks for none does no work per call.
///
/// A handler reads them as ``current`` while it runs (a task-local, bound
/// around the handler, which the task it starts inherits). The plugin SDK
/// reads a trace's `traceparent` and `tracestate` here.
package enum CallHeaders {
  /// The passed headers of the call being handled: name (lowercase) and
  /// value, in the order they came; empty outside a handler.
  @TaskLocal package static var current: [(String, String)] = []

  /// The W3C trace context's headers, which a traced call carries.
  package static let traceContext: Set<String> = ["traceparent", "tracestate", "baggage"]
}
