/// How the host reaches plugins: one replaceable part. The default is
/// ``GRPCPluginTransport`` (grpc-swift-2 on HTTP/2 over unix sockets).
public protocol PluginTransport: Sendable {
  /// Connects to a plugin for the duration of `body`; the connection closes
  /// when `body` returns.
  func withConnection<Result: Sendable>(
    to address: PluginAddress,
    _ body: (any PluginConnection) async throws -> Result
  ) async throws -> Result
}
