internal import DeckhandPlugin
internal import DeckhandProtocol
internal import GRPCCore

/// Serves `plugin_comm.GuestAgentPlugin` on grpc-swift-2.
struct GuestAgentService: PluginComm_GuestAgentPlugin.SimpleServiceProtocol {
  let dispatcher: PluginDispatcher
  let onStop: @Sendable () -> Void

  func start(request: PluginComm_StartRequest, context: ServerContext) async throws -> PluginComm_StartResponse {
    try await mapped { try await dispatcher.start(request) }
  }

  func stop(request: PluginComm_StopRequest, context: ServerContext) async throws -> PluginComm_StopResponse {
    defer { onStop() }
    return try await mapped { try await dispatcher.stop(request) }
  }

  func getStatus(request: PluginComm_GetStatusRequest, context: ServerContext) async throws -> PluginComm_Status {
    try await mapped { try await dispatcher.getStatus(request) }
  }

  func apply(request: PluginComm_ApplyRequest, context: ServerContext) async throws -> PluginComm_ApplyResponse {
    try await mapped { try await dispatcher.apply(request) }
  }

  private func mapped<R: Sendable>(_ body: () async throws -> R) async throws -> R {
    do {
      return try await body()
    } catch let error as RPCError {
      throw error
    } catch {
      throw RPCError(code: .unknown, message: "\(error)")
    }
  }
}
