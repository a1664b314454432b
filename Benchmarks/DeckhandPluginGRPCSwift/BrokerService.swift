internal import DeckhandProtocol
internal import GRPCCore

/// `plugin.GRPCBroker`: Deckhand plugins open no extra connections; the
/// stream stays open, reading, until the host closes it.
struct BrokerService: Plugin_GRPCBroker.SimpleServiceProtocol {
  func startStream(
    request: RPCAsyncSequence<Plugin_ConnInfo, any Error>,
    response: RPCWriter<Plugin_ConnInfo>,
    context: ServerContext
  ) async throws {
    for try await _ in request {}
  }
}
