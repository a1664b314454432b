internal import DeckhandProtocol
internal import GRPCCore

/// Serves `plugin_comm.GuestAgentPlugin` by calling a ``Plugin``.
struct GuestAgentService<P: Plugin>: PluginComm_GuestAgentPlugin.SimpleServiceProtocol {
  let plugin: P
  let onStop: @Sendable () -> Void

  func start(request: PluginComm_StartRequest, context: ServerContext) async throws -> PluginComm_StartResponse {
    let config: StartContext.Config =
      switch request.serviceConfig {
      case .stringConfig(let text): .string(text)
      case .structConfig(let structure): .structure(structure)
      case nil: .none
      }
    try await run("Start") {
      try await plugin.start(StartContext(stateDirectory: request.config.stateDirectoryPath, config: config))
    }
    return PluginComm_StartResponse()
  }

  func stop(request: PluginComm_StopRequest, context: ServerContext) async throws -> PluginComm_StopResponse {
    defer { onStop() }
    try await run("Stop") { try await plugin.stop(cleanup: request.cleanup) }
    return PluginComm_StopResponse()
  }

  func getStatus(request: PluginComm_GetStatusRequest, context: ServerContext) async throws -> PluginComm_Status {
    let status = try await run("GetStatus") { try await plugin.status(data: request.hasData ? request.data : nil) }
    var response = PluginComm_Status()
    response.code = status.code
    response.results = status.results
    return response
  }

  func apply(request: PluginComm_ApplyRequest, context: ServerContext) async throws -> PluginComm_ApplyResponse {
    try await run("Apply") { try await plugin.apply(request.data) }
    return PluginComm_ApplyResponse()
  }

  /// Runs a plugin method; its error is logged and sent as an RPC error.
  private func run<R: Sendable>(_ method: String, _ body: () async throws -> R) async throws -> R {
    do {
      return try await body()
    } catch let error as RPCError {
      PluginLog.error("\(method) failed: \(error.message)")
      throw error
    } catch {
      PluginLog.error("\(method) failed: \(error)")
      throw RPCError(code: .unknown, message: "\(method) failed: \(error)")
    }
  }
}
