internal import NIOCore
package import SwiftProtobuf

extension LeanGRPCRouter {
  /// A router handler that decodes `Request`, runs `body` and encodes its
  /// answer; `then` runs once the answer is written.
  package static func message<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
    then: (@Sendable () -> Void)? = nil,
    _ body: @escaping @Sendable (Request) async throws -> Response
  ) -> LeanGRPCRouter.UnaryHandler {
    { bytes, promise in
      let request: Request
      do {
        request = try Request(serializedBytes: bytes.readableBytesSpan)
      } catch {
        promise.fail(GRPCCallError(.internal, "cannot decode \(Request.protoMessageName): \(error)"))
        return
      }
      if let then { promise.futureResult.whenComplete { _ in then() } }
      let run: @Sendable () async -> Void = {
        do {
          let response: GRPCMessageBytes = try await body(request).serializedBytes()
          promise.succeed(response.buffer)
        } catch let error as GRPCCallError {
          promise.fail(error)
        } catch {
          promise.fail(GRPCCallError(.unknown, "\(error)"))
        }
      }
      // Called on the connection's event loop: run the body right here until
      // it first suspends (most plugin methods never do), instead of
      // enqueueing a job for a later turn of the loop.
      if #available(macOS 26, *) {
        Task.immediate(operation: run)
      } else {
        Task(operation: run)
      }
    }
  }
}
