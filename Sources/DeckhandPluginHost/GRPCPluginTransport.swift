internal import CDeckhandSystem
internal import DeckhandCore
internal import DeckhandGRPC
internal import DeckhandProtocol
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
internal import SwiftProtobuf

/// The default ``PluginTransport``: grpc-swift-2 clients on HTTP/2, over
/// unix domain sockets (or loopback TCP for go-plugin plugins that ask).
package struct GRPCPluginTransport: PluginTransport {
  package init() {}

  package func withConnection<Result: Sendable>(
    to address: PluginAddress,
    _ body: (any PluginConnection) async throws -> Result
  ) async throws -> Result {
    let target: any ResolvableTarget =
      switch address {
      case .unix(let path): .unixDomainSocket(path: path)
      case .tcp(let host, let port): .dns(host: host, port: port)
      }
    let transport = try HTTP2ClientTransport.Posix(
      target: target,
      transportSecurity: .plaintext,
      config: .defaults {
        // A local plugin is there or not: retry connecting quickly.
        $0.backoff = .init(initial: .milliseconds(5), max: .milliseconds(100), multiplier: 1.6, jitter: 0.2)
      }
    )
    // grpc-swift does not show its socket: the server's process is read
    // from a connection of our own to the same path, just before.
    var server: PeerCredentials?
    if case .unix(let path) = address {
      let pid = deckhand_unix_peer_pid(path)
      if pid > 0 { server = PeerCredentials(pid: pid, uid: 0, gid: 0) }
    }
    return try await withGRPCClient(transport: transport) { client in
      try await body(GRPCPluginConnection(client: client, address: address, server: server))
    }
  }
}

/// A ``PluginConnection`` over one grpc-swift-2 client.
struct GRPCPluginConnection<Transport: ClientTransport>: PluginConnection {
  let plugin: PluginComm_GuestAgentPlugin.Client<Transport>
  let health: Grpc_Health_V1_Health.Client<Transport>
  let controller: Plugin_GRPCController.Client<Transport>
  let commands: Deckhand_Host_V1_PluginCommands.Client<Transport>
  let address: PluginAddress
  let server: PeerCredentials?

  func serverCredentials() async -> PeerCredentials? { server }

  init(client: GRPCClient<Transport>, address: PluginAddress, server: PeerCredentials?) {
    self.server = server
    self.plugin = .init(wrapping: client)
    self.health = .init(wrapping: client)
    self.controller = .init(wrapping: client)
    self.commands = .init(wrapping: client)
    self.address = address
  }

  private func options(_ timeout: Duration) -> CallOptions {
    var options = CallOptions.defaults
    options.timeout = timeout
    options.waitForReady = false
    return options
  }

  private func call<R>(_ name: String, _ body: () async throws -> R) async throws -> R {
    do {
      return try await body()
    } catch let error as RPCError {
      throw DeckhandError(.callFailed, "\(name) on \(address) failed: \(error.code): \(error.message)", cause: error)
    }
  }

  func start(_ request: PluginComm_StartRequest, timeout: Duration) async throws {
    _ = try await call("Start") { try await plugin.start(request, options: options(timeout)) }
  }

  func stop(_ request: PluginComm_StopRequest, timeout: Duration) async throws {
    _ = try await call("Stop") { try await plugin.stop(request, options: options(timeout)) }
  }

  func getStatus(data: String?, timeout: Duration) async throws -> PluginComm_Status {
    var request = PluginComm_GetStatusRequest()
    if let data { request.data = data }
    return try await call("GetStatus") { try await plugin.getStatus(request, options: options(timeout)) }
  }

  func apply(_ payload: Google_Protobuf_Any, timeout: Duration) async throws {
    var request = PluginComm_ApplyRequest()
    request.data = payload
    _ = try await call("Apply") { try await plugin.apply(request, options: options(timeout)) }
  }

  func checkHealth(service: String, timeout: Duration) async throws -> Bool {
    var request = Grpc_Health_V1_HealthCheckRequest()
    request.service = service
    let response = try await call("grpc.health.v1.Health/Check") {
      try await health.check(request, options: options(timeout))
    }
    return response.status == .serving
  }

  func shutdownController(timeout: Duration) async throws {
    _ = try await call("plugin.GRPCController/Shutdown") {
      try await controller.shutdown(Plugin_Empty(), options: options(timeout))
    }
  }

  func handleCommand(_ request: Deckhand_Host_V1_HandleCommandRequest, timeout: Duration) async throws
    -> Deckhand_Host_V1_HandleCommandResponse
  {
    try await call("deckhand.host.v1.PluginCommands/HandleCommand") {
      try await commands.handleCommand(request, options: options(timeout))
    }
  }
}
