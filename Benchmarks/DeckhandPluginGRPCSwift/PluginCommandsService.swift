internal import DeckhandPlugin
internal import DeckhandProtocol
internal import GRPCCore

/// Serves `deckhand.host.v1.PluginCommands` on grpc-swift-2: the agent's
/// way to hand a command-socket request to the plugin that registered it.
struct PluginCommandsService: Deckhand_Host_V1_PluginCommands.SimpleServiceProtocol {
  let dispatcher: PluginDispatcher

  func handleCommand(request: Deckhand_Host_V1_HandleCommandRequest, context: ServerContext) async throws
    -> Deckhand_Host_V1_HandleCommandResponse
  {
    do {
      return try await dispatcher.handleCommand(request)
    } catch {
      throw RPCError(code: .unknown, message: "\(error)")
    }
  }
}
