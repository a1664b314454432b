internal import DeckhandGRPC
internal import DeckhandProtocol
internal import NIOCore
internal import SwiftProtobuf

/// The SDK's server: Deckhand's lean gRPC server on swift-nio-http2,
/// serving GuestAgentPlugin, `grpc.health.v1` Check, go-plugin's
/// controller, and go-plugin's broker stream held open.
package struct LeanPluginServer: PluginServerEngine {
  package init() {}

  package func serve(_ dispatcher: PluginDispatcher, socketPath: String, announce: @Sendable () -> Void)
    async throws
  {
    let (stopRequests, requestStop) = AsyncStream.makeStream(of: Void.self)
    let server = try await LeanGRPCServer.bind(
      unixSocket: socketPath, router: Self.router(dispatcher) { requestStop.yield() })
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
        guard request.service.isEmpty || request.service == "plugin" else {
          throw GRPCCallError(.notFound, "unknown service \(request.service)")
        }
        var response = Grpc_Health_V1_HealthCheckResponse()
        response.status = .serving
        return response
      })
    router.register(
      "/plugin.GRPCController/Shutdown", LeanGRPCRouter.message(then: onStop) { (_: Plugin_Empty) in Plugin_Empty() })
    router.holdOpen("/plugin.GRPCBroker/StartStream")
    return router
  }
}
