internal import DeckhandProtocol
internal import GRPCCore

/// `plugin.GRPCController`: go-plugin's Kill asks the plugin to exit.
struct ControllerService: Plugin_GRPCController.SimpleServiceProtocol {
  let onShutdown: @Sendable () -> Void

  func shutdown(request: Plugin_Empty, context: ServerContext) async throws -> Plugin_Empty {
    onShutdown()
    return Plugin_Empty()
  }
}
