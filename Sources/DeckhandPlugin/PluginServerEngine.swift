/// A gRPC server that carries a plugin's calls: the SDK's lean server, or
/// grpc-swift-2 for the side-by-side benchmark (`DeckhandPluginGRPCSwift`).
package protocol PluginServerEngine: Sendable {
  /// Serves `dispatcher` on the unix socket `socketPath` until the host's
  /// Stop (or go-plugin's Shutdown) has been answered. Calls `announce` once
  /// the socket accepts.
  func serve(_ dispatcher: PluginDispatcher, socketPath: String, announce: @Sendable () -> Void) async throws
}
