internal import DeckhandCore
internal import DeckhandGRPC
internal import DeckhandProtocol
internal import NIOCore
internal import SwiftProtobuf
internal import Tracing

/// The fast ``PluginTransport``: Deckhand's lean gRPC client on
/// swift-nio-http2, whose calls are handled on the connection's event loop.
/// Standard gRPC on the wire, so it talks to any gRPC plugin.
package struct LeanPluginTransport: PluginTransport {
  package init() {}

  package func withConnection<Result: Sendable>(
    to address: PluginAddress,
    _ body: (any PluginConnection) async throws -> Result
  ) async throws -> Result {
    let client = try await Self.connect(address)
    do {
      let result = try await body(LeanPluginConnection(client: client, address: address))
      await client.close()
      return result
    } catch {
      await client.close()
      throw error
    }
  }

  /// Connects, retrying for up to a second: a plugin that just printed its
  /// handshake may still be a moment from accepting. The pauses start at
  /// 50 µs and double up to 5 ms.
  private static func connect(_ address: PluginAddress) async throws -> LeanGRPCClient {
    let deadline = ContinuousClock.now + .seconds(1)
    var pause = Duration.microseconds(50)
    while true {
      do {
        switch address {
        case .unix(let path): return try await LeanGRPCClient.connect(unixSocket: path)
        case .tcp(let host, let port): return try await LeanGRPCClient.connect(host: host, port: port)
        }
      } catch {
        if ContinuousClock.now > deadline {
          throw DeckhandError(.callFailed, "cannot connect to the plugin at \(address): \(error)", cause: error)
        }
        try await LoopSleep.sleep(for: pause)
        pause = min(pause * 2, .milliseconds(5))
      }
    }
  }
}

/// A ``PluginConnection`` over one lean gRPC client.
struct LeanPluginConnection: PluginConnection {
  let client: LeanGRPCClient
  let address: PluginAddress

  func serverCredentials() async -> PeerCredentials? { await client.peerCredentials() }

  private func call<Response: SwiftProtobuf.Message>(
    _ path: String, _ request: some SwiftProtobuf.Message, timeout: Duration, as: Response.Type = Response.self
  ) async throws -> Response {
    // Inside a trace (a job's, an operator's command), the call is a client
    // span whose W3C context goes in the request's headers; outside one
    // (health checks, and always when tracing is off) nothing is added.
    guard InstrumentationContext.current != nil else {
      return try await send(path, request, timeout: timeout, metadata: [])
    }
    return try await withSpan(String(path.dropFirst()), ofKind: .client) { span in
      span.attributes["rpc.system"] = "grpc"
      var metadata: [(String, String)] = []
      InstrumentationSystem.instrument.inject(span.context, into: &metadata, using: HeaderListInjector())
      do {
        return try await send(path, request, timeout: timeout, metadata: metadata)
      } catch {
        span.setStatus(SpanStatus(code: .error))
        throw error
      }
    }
  }

  private func send<Response: SwiftProtobuf.Message>(
    _ path: String, _ request: some SwiftProtobuf.Message, timeout: Duration, metadata: [(String, String)]
  ) async throws -> Response {
    do {
      return try await client.message(path, request, timeout: timeout, metadata: metadata)
    } catch let error as GRPCCallError {
      throw DeckhandError(.callFailed, "\(path) on \(address) failed: \(error.code): \(error.message)", cause: error)
    }
  }

  func start(_ request: PluginComm_StartRequest, timeout: Duration) async throws {
    let _: PluginComm_StartResponse = try await call(
      "/plugin_comm.GuestAgentPlugin/Start", request, timeout: timeout)
  }

  func stop(_ request: PluginComm_StopRequest, timeout: Duration) async throws {
    let _: PluginComm_StopResponse = try await call("/plugin_comm.GuestAgentPlugin/Stop", request, timeout: timeout)
  }

  func getStatus(data: String?, timeout: Duration) async throws -> PluginComm_Status {
    var request = PluginComm_GetStatusRequest()
    if let data { request.data = data }
    return try await call("/plugin_comm.GuestAgentPlugin/GetStatus", request, timeout: timeout)
  }

  func apply(_ payload: Google_Protobuf_Any, timeout: Duration) async throws {
    var request = PluginComm_ApplyRequest()
    request.data = payload
    let _: PluginComm_ApplyResponse = try await call("/plugin_comm.GuestAgentPlugin/Apply", request, timeout: timeout)
  }

  func checkHealth(service: String, timeout: Duration) async throws -> Bool {
    var request = Grpc_Health_V1_HealthCheckRequest()
    request.service = service
    let response: Grpc_Health_V1_HealthCheckResponse = try await call(
      "/grpc.health.v1.Health/Check", request, timeout: timeout)
    return response.status == .serving
  }

  func shutdownController(timeout: Duration) async throws {
    let _: Plugin_Empty = try await call("/plugin.GRPCController/Shutdown", Plugin_Empty(), timeout: timeout)
  }

  func handleCommand(_ request: Deckhand_Host_V1_HandleCommandRequest, timeout: Duration) async throws
    -> Deckhand_Host_V1_HandleCommandResponse
  {
    try await call("/deckhand.host.v1.PluginCommands/HandleCommand", request, timeout: timeout)
  }
}

/// Puts a trace context's headers in a lean call's request headers.
struct HeaderListInjector: Injector {
  func inject(_ value: String, forKey key: String, into carrier: inout [(String, String)]) {
    carrier.append((key.lowercased(), value))
  }
}
