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
      Task {
        do {
          let response: GRPCMessageBytes = try await body(request).serializedBytes()
          promise.succeed(response.buffer)
        } catch let error as GRPCCallError {
          promise.fail(error)
        } catch {
          promise.fail(GRPCCallError(.unknown, "\(error)"))
        }
      }
    }
  }
}
