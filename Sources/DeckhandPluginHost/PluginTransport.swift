/// How the host reaches plugins: one replaceable part. The default is
/// ``LeanPluginTransport`` (Deckhand's gRPC client on swift-nio-http2);
/// ``GRPCPluginTransport`` (grpc-swift-2) is the alternative. Both speak
/// standard gRPC over HTTP/2 on unix sockets.
package protocol PluginTransport: Sendable {
  /// Connects to a plugin for the duration of `body`; the connection closes
  /// when `body` returns.
  func withConnection<Result: Sendable>(
    to address: PluginAddress,
    _ body: (any PluginConnection) async throws -> Result
  ) async throws -> Result
}
