// deckhand-test-traced-plugin: an SDK plugin served by DeckhandPluginTracing,
// for the traces tests. Its Apply does its work in a span of its own,
// "traced-plugin.work", which must be a child of the SDK's server span for
// the call (itself a child of the agent's span for the call).
import DeckhandPlugin
import DeckhandPluginTracing
import Tracing

struct TracedPlugin: Plugin {
  func start(_ context: StartContext) async throws {}

  func status(data: String?) async throws -> PluginStatus {
    PluginStatus(code: 0, results: ["traced"])
  }

  func apply(_ payload: Google_Protobuf_Any) async throws {
    try await withSpan("traced-plugin.work") { span in
      span.attributes["payload.type"] = payload.typeURL
    }
  }
}

PluginTracing.main(TracedPlugin())
