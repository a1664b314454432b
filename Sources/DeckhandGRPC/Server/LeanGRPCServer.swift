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

  /// Decides whether a connection's peer may call; returns why not, or nil
  /// to admit it. Called once per connection, on its event loop.
  package typealias PeerCheck = @Sendable (PeerCredentials?) -> String?

  /// Binds `path` (removing a stale socket file first) and starts serving.
  ///
  /// - Parameter admit: when given, each connection's peer (its
  ///   `SO_PEERCRED`) is checked when it is accepted; a refused peer gets
  ///   PERMISSION_DENIED with the reason on every call.
  package static func bind(
    unixSocket path: String,
    router: LeanGRPCRouter,
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    maxReceiveMessageSize: Int = 4 << 20,
    spin: LoopSpinner.Policy = .default,
    admit: PeerCheck? = nil
  ) async throws -> LeanGRPCServer {
    let channel = try await bootstrap(router, group, maxReceiveMessageSize, spin, admit: admit)
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
    spin: LoopSpinner.Policy = .default
  ) async throws -> LeanGRPCServer {
    let channel = try await bootstrap(router, group, maxReceiveMessageSize, spin)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
      .bind(host: host, port: port)
      .get()
    return LeanGRPCServer(channel: channel)
  }

  /// The port a TCP server listens on.
  package var port: Int? { channel.localAddress?.port }

  private static func bootstrap(
    _ router: LeanGRPCRouter, _ group: any EventLoopGroup, _ maxReceiveMessageSize: Int, _ spin: LoopSpinner.Policy,
    admit: PeerCheck? = nil
  )
    -> ServerBootstrap
  {
    @Sendable func serve(_ channel: any Channel, _ router: LeanGRPCRouter) -> EventLoopFuture<Void> {
      channel.eventLoop.makeCompletedFuture {
        try channel.pipeline.syncOperations.addHandlers([
          NIOHTTP2Handler(mode: .server, connectionConfiguration: LeanGRPCClient.connectionConfiguration),
          ServerConnectionHandler(
            router: router, maxReceiveMessageSize: maxReceiveMessageSize, windowSize: LeanGRPCClient.windowSize,
            spin: spin),
        ])
      }
    }
    return ServerBootstrap(group: group)
      .serverChannelOption(.backlog, value: 256)
      .childChannelOption(.recvAllocator, value: LeanGRPCClient.receiveAllocator)
      .childChannelInitializer { channel in
        guard let admit else { return serve(channel, router) }
        return PeerCredentials.of(channel).flatMap { peer in
          guard let refusal = admit(peer) else { return serve(channel, router) }
          return serve(channel, router.refusingAll(refusal))
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
