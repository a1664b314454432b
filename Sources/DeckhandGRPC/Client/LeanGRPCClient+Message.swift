internal import NIOCore
package import SwiftProtobuf

extension LeanGRPCClient {
  /// A unary call with protobuf messages: serializes `request`, calls
  /// `path` with `metadata` (extra request headers, lowercase names) and
  /// decodes the answer.
  ///
  /// - Throws: ``GRPCCallError`` as ``unary(path:request:timeout:metadata:)``,
  ///   or SwiftProtobuf's error for an answer that does not decode.
  package func message<Response: SwiftProtobuf.Message>(
    _ path: String, _ request: some SwiftProtobuf.Message, timeout: Duration, metadata: [(String, String)] = []
  ) async throws -> Response {
    let bytes: GRPCMessageBytes = try request.serializedBytes()
    let response = try await unary(path: path, request: bytes.buffer, timeout: timeout, metadata: metadata)
    return try Response(serializedBytes: response.readableBytesSpan)
  }
}
