internal import DeckhandCore
package import DeckhandPluginProtocol
internal import FoundationEssentials

/// Turns `plugin_comm` requests into calls of a ``Plugin``, whichever server
/// carries them. A plugin's error is logged and rethrown as a
/// ``DeckhandError`` (`callFailed`) naming the method.
package struct PluginDispatcher: Sendable {
  let plugin: any Plugin

  init(plugin: any Plugin) {
    self.plugin = plugin
  }

  /// A plugin method failed.
  package func start(_ request: PluginComm_StartRequest) async throws -> PluginComm_StartResponse {
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

  package func stop(_ request: PluginComm_StopRequest) async throws -> PluginComm_StopResponse {
    try await run("Stop") { try await plugin.stop(cleanup: request.cleanup) }
    return PluginComm_StopResponse()
  }

  package func getStatus(_ request: PluginComm_GetStatusRequest) async throws -> PluginComm_Status {
    let status = try await run("GetStatus") { try await plugin.status(data: request.hasData ? request.data : nil) }
    var response = PluginComm_Status()
    response.code = status.code
    response.results = status.results
    return response
  }

  package func apply(_ request: PluginComm_ApplyRequest) async throws -> PluginComm_ApplyResponse {
    try await run("Apply") { try await plugin.apply(request.data) }
    return PluginComm_ApplyResponse()
  }

  package func handleCommand(_ request: Deckhand_Host_V1_HandleCommandRequest) async throws
    -> Deckhand_Host_V1_HandleCommandResponse
  {
    guard case .object(let fields) = try JSONValue.parse(Array(request.requestJson)) else {
      throw DeckhandError(.configurationInvalid, "HandleCommand: the request is not a JSON object")
    }
    let answer = try await run("HandleCommand \(request.name)") {
      try await plugin.command(request.name, request: fields)
    }
    guard let bytes = JSONValue.object(answer).serialized() else {
      throw DeckhandError(
        .callFailed, "HandleCommand \(request.name): the answer holds a number JSON cannot express")
    }
    var response = Deckhand_Host_V1_HandleCommandResponse()
    response.responseJson = Data(bytes)
    return response
  }

  private func run<R: Sendable>(_ method: String, _ body: () async throws -> R) async throws -> R {
    do {
      return try await body()
    } catch {
      PluginLog.error("\(method) failed: \(error)")
      throw DeckhandError(.callFailed, "\(method) failed: \(error)", cause: error)
    }
  }
}
