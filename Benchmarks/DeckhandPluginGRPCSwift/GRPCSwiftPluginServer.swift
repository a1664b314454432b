package import DeckhandPlugin
internal import DeckhandProtocol
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix

/// A ``DeckhandPlugin/PluginServerEngine`` on grpc-swift-2 and its NIO
/// transport: the same service as the SDK's lean server, for the
/// side-by-side benchmark (`deckhand-bench-plugin-grpc-swift`). Plugins do
/// not link it: it brings grpc-swift-2, NIOSSL and Foundation along.
package struct GRPCSwiftPluginServer: PluginServerEngine {
  package init() {}

  package func serve(_ dispatcher: PluginDispatcher, address: PluginListenAddress, announce: @Sendable () -> Void)
    async throws
  {
    let (stopRequests, requestStop) = AsyncStream.makeStream(of: Void.self)
    let stop: @Sendable () -> Void = { requestStop.yield() }
    let transport = HTTP2ServerTransport.Posix(
      address: {
        switch address {
        case .unix(let path): .unixDomainSocket(path: path)
        case .tcp(let host, let port): .ipv4(host: host, port: port)
        }
      }(),
      transportSecurity: .plaintext
    )
    let server = GRPCServer(
      transport: transport,
      services: [
        GuestAgentService(dispatcher: dispatcher, onStop: stop),
        PluginCommandsService(dispatcher: dispatcher),
        HealthService(),
        ControllerService(onShutdown: stop),
        BrokerService(),
      ]
    )
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        defer { requestStop.finish() }
        try await server.serve()
      }
      group.addTask {
        for await _ in stopRequests {
          server.beginGracefulShutdown()
          break
        }
      }
      guard (try? await transport.listeningAddress) != nil else {
        stop()
        return
      }
      announce()
      try await group.waitForAll()
    }
  }
}
