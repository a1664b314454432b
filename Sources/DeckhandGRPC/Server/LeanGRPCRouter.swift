package import NIOCore

/// What a lean gRPC server serves: unary methods by path, and streaming
/// methods that are only held open (go-plugin's broker stream).
package struct LeanGRPCRouter: Sendable {
  /// Answers one unary call: completes `promise` with the serialized
  /// response, or fails it (a ``GRPCCallError`` keeps its code; anything
  /// else is `unknown`). Called on the connection's event loop.
  package typealias UnaryHandler =
    @Sendable (_ request: ByteBuffer, _ promise: EventLoopPromise<ByteBuffer>) -> Void

  package private(set) var unary: [String: UnaryHandler] = [:]
  package private(set) var heldOpen: Set<String> = []
  /// The request headers handlers read as ``CallHeaders/current``; empty
  /// (the default): none, and no work per call to find them.
  package var passedHeaders: Set<String> = []

  package init() {}

  /// Serves `path` (`/package.Service/Method`) with `handler`.
  package mutating func register(_ path: String, _ handler: @escaping UnaryHandler) {
    unary[path] = handler
  }

  /// Answers a streaming `path` with headers at once and OK trailers when the
  /// client ends its side, reading and dropping its messages.
  package mutating func holdOpen(_ path: String) {
    heldOpen.insert(path)
  }

  /// The same methods, each also reporting its path and whether it
  /// succeeded to `observe` once answered (for metrics).
  package func observing(_ observe: @escaping @Sendable (_ path: String, _ succeeded: Bool) -> Void) -> LeanGRPCRouter {
    var observed = self
    for (path, handler) in unary {
      observed.register(path) { request, promise in
        promise.futureResult.whenComplete { result in
          if case .success = result { observe(path, true) } else { observe(path, false) }
        }
        handler(request, promise)
      }
    }
    return observed
  }

  /// The same methods, each answering PERMISSION_DENIED with `reason` (a
  /// refused peer learns why, not only that the connection closed).
  package func refusingAll(_ reason: String) -> LeanGRPCRouter {
    var refusing = LeanGRPCRouter()
    refusing.passedHeaders = passedHeaders
    for path in unary.keys {
      refusing.register(path) { _, promise in promise.fail(GRPCCallError(.permissionDenied, reason)) }
    }
    return refusing
  }
}
