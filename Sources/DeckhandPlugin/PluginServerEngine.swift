/// A gRPC server that carries a plugin's calls: the SDK's lean server, or
/// grpc-swift-2 for the side-by-side benchmark (`DeckhandPluginGRPCSwift`).
package protocol PluginServerEngine: Sendable {
  /// Serves `dispatcher` on `address` until the host's Stop (or go-plugin's
  /// Shutdown) has been answered. Calls `announce` once the socket accepts.
  func serve(_ dispatcher: PluginDispatcher, address: PluginListenAddress, announce: @Sendable () -> Void)
    async throws
}

/// Where a plugin serves: a unix socket (the host's own machine), or TCP (a
/// plugin in a Kubernetes pod).
package enum PluginListenAddress: Sendable, Hashable {
  case unix(path: String)
  case tcp(host: String, port: Int)
}
