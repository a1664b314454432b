internal import DeckhandGRPC
internal import DeckhandPluginProtocol
internal import NIOCore
internal import SwiftProtobuf

/// The SDK's server: Deckhand's lean gRPC server on swift-nio-http2,
/// serving GuestAgentPlugin, `grpc.health.v1` Check, go-plugin's
/// controller, and go-plugin's broker stream held open.
package struct LeanPluginServer: PluginServerEngine {
  package init() {}

  package func serve(_ dispatcher: PluginDispatcher, address: PluginListenAddress, announce: @Sendable () -> Void)
    async throws
  {
    let (stopRequests, requestStop) = AsyncStream.makeStream(of: Void.self)
    let router = Self.router(dispatcher) { requestStop.yield() }
    let server =
      switch address {
      case .unix(let path): try await LeanGRPCServer.bind(unixSocket: path, router: router)
      case .tcp(let host, let port): try await LeanGRPCServer.bind(host: host, port: port, router: router)
      }
    announce()
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        await server.waitUntilClosed()
        requestStop.finish()
      }
      group.addTask {
        for await _ in stopRequests {
          server.close()
          break
        }
      }
    }
  }

  static func router(_ dispatcher: PluginDispatcher, onStop: @escaping @Sendable () -> Void) -> LeanGRPCRouter {
    var router = LeanGRPCRouter()
    // Only a traced plugin reads the trace context's headers.
    if dispatcher.traced { router.passedHeaders = CallHeaders.traceContext }
    let service = "/plugin_comm.GuestAgentPlugin/"
    router.register(service + "Start", LeanGRPCRouter.message { try await dispatcher.start($0) })
    router.register(service + "Stop", LeanGRPCRouter.message(then: onStop) { try await dispatcher.stop($0) })
    router.register(service + "GetStatus", LeanGRPCRouter.message { try await dispatcher.getStatus($0) })
    router.register(service + "Apply", LeanGRPCRouter.message { try await dispatcher.apply($0) })
    router.register(
      "/deckhand.host.v1.PluginCommands/HandleCommand",
      LeanGRPCRouter.message { try await dispatcher.handleCommand($0) })
    router.register(
      "/grpc.health.v1.Health/Check",
      LeanGRPCRouter.message { (request: Grpc_Health_V1_HealthCheckRequest) in
        var response = Grpc_Health_V1_HealthCheckResponse()
        switch request.service {
        case "", "plugin":
          response.status = .serving
        case "plugin_comm.GuestAgentPlugin":
          // Readiness through GetStatus (a Kubernetes gRPC probe): code 0
          // is SERVING.
          let status = try? await dispatcher.getStatus(PluginComm_GetStatusRequest())
          response.status = status?.code == 0 ? .serving : .notServing
        default:
          throw GRPCCallError(.notFound, "unknown service \(request.service)")
        }
        return response
      })
    router.register(
      "/plugin.GRPCController/Shutdown", LeanGRPCRouter.message(then: onStop) { (_: Plugin_Empty) in Plugin_Empty() })
    router.holdOpen("/plugin.GRPCBroker/StartStream")
    return router
  }
}
