package import NIOCore
internal import NIOHTTP2
internal import NIOPosix

/// A lean gRPC server on a unix socket: HTTP/2 streams handled on the
/// connection's event loop by ``ServerConnectionHandler``.
package final class LeanGRPCServer: Sendable {
  private let channel: any Channel

  private init(channel: any Channel) {
    self.channel = channel
  }

  /// Binds `path` (removing a stale socket file first) and starts serving.
  package static func bind(
    unixSocket path: String,
    router: LeanGRPCRouter,
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    maxReceiveMessageSize: Int = 4 << 20,
    spinBudget: Duration = LoopSpinner.defaultBudget
  ) async throws -> LeanGRPCServer {
    let channel = try await bootstrap(router, group, maxReceiveMessageSize, spinBudget)
      .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
      .get()
    return LeanGRPCServer(channel: channel)
  }

  /// Binds `host`:`port` (TCP; port 0 picks a free one) and starts serving.
  package static func bind(
    host: String,
    port: Int,
    router: LeanGRPCRouter,
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    maxReceiveMessageSize: Int = 4 << 20,
    spinBudget: Duration = LoopSpinner.defaultBudget
  ) async throws -> LeanGRPCServer {
    let channel = try await bootstrap(router, group, maxReceiveMessageSize, spinBudget)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
      .bind(host: host, port: port)
      .get()
    return LeanGRPCServer(channel: channel)
  }

  /// The port a TCP server listens on.
  package var port: Int? { channel.localAddress?.port }

  private static func bootstrap(
    _ router: LeanGRPCRouter, _ group: any EventLoopGroup, _ maxReceiveMessageSize: Int, _ spinBudget: Duration
  )
    -> ServerBootstrap
  {
    ServerBootstrap(group: group)
      .serverChannelOption(.backlog, value: 256)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHandlers([
            NIOHTTP2Handler(mode: .server, connectionConfiguration: LeanGRPCClient.connectionConfiguration),
            ServerConnectionHandler(
              router: router, maxReceiveMessageSize: maxReceiveMessageSize, windowSize: LeanGRPCClient.windowSize,
              spinBudget: spinBudget),
          ])
        }
      }
  }

  /// Waits until the server is closed.
  package func waitUntilClosed() async {
    try? await channel.closeFuture.get()
  }

  /// Stops accepting connections; open connections end with their calls.
  package func close() {
    channel.close(promise: nil)
  }
}
