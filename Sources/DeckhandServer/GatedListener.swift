internal import GRPCNIOTransportHTTP2Posix
internal import NIOCore
internal import NIOPosix
internal import NIOSSL

/// The server's listener: grpc-swift's HTTP/2 server pipeline behind TLS,
/// as `HTTP2ServerTransport.Posix` builds it, with a ``ConnectionGate``
/// deciding on each connection before its TLS handshake starts, and a
/// listen backlog sized for thousands of agents reconnecting at once.
///
/// grpc-swift's own Posix transport has no hook before TLS; its
/// `ListenerFactory` protocol is the supported way to own the bootstrap.
struct GatedListener: HTTP2ServerTransport.ListenerFactory {
  let host: String
  let port: Int
  let certificateChainPEM: String
  let privateKeyPEM: String
  let gate: ConnectionGate
  let eventLoopGroup: any EventLoopGroup

  /// Accepted connections the kernel queues before the server takes them.
  static let backlog: Int32 = 4096

  func makeListeningChannel(
    listenerConfigurator: HTTP2ServerTransport.ListenerConfigurator,
    connectionConfigurator: HTTP2ServerTransport.ConnectionConfigurator
  ) async throws -> NIOAsyncChannel<HTTP2ServerTransport.ConnectionConfigurator.ConnectionChannel, Never> {
    var tls = try Self.serverTLS(certificateChainPEM: certificateChainPEM, privateKeyPEM: privateKeyPEM)
    tls.minimumTLSVersion = .tlsv12
    tls.applicationProtocols = ["grpc-exp", "h2"]
    let context = try NIOSSLContext(configuration: tls)
    let gate = self.gate
    return try await ServerBootstrap(group: eventLoopGroup)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .serverChannelOption(.backlog, value: Self.backlog)
      .serverChannelInitializer { channel in
        listenerConfigurator.configure(channel: channel).flatMapThrowing {
          try channel.pipeline.syncOperations.addHandler(ConnectionGateHandler.Acceptor(gate: gate))
        }
      }
      .bind(host: host, port: port) { channel in
        channel.eventLoop.makeCompletedFuture {
          let sync = channel.pipeline.syncOperations
          if let handler = ConnectionGateHandler.admitted(channel, gate: gate) { try sync.addHandler(handler) }
          try sync.addHandler(NIOSSLServerHandler(context: context))
        }.flatMap {
          connectionConfigurator.configure(channel: channel, tls: .configured(requireALPN: false))
        }
      }
  }
}

extension GatedListener {
  /// A server TLS configuration from the CA's PEMs: the gRPC listener's
  /// and the web UI's.
  static func serverTLS(certificateChainPEM: String, privateKeyPEM: String) throws -> TLSConfiguration {
    TLSConfiguration.makeServerConfiguration(
      certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(certificateChainPEM.utf8)).map { .certificate($0) },
      privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)))
  }
}
