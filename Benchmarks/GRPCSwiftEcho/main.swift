// deckhand-bench-plugin-grpc-swift: the echo example's service on
// grpc-swift-2 instead of the SDK's lean server, so that `scripts/bench.sh`
// shows both paths side by side on the same service.
import DeckhandPlugin
import DeckhandPluginGRPCSwift

struct BenchEcho: Plugin {
  func start(_ context: StartContext) async throws {}
  func status(data: String?) async throws -> PluginStatus {
    PluginStatus(code: 0, results: [data ?? "healthy"])
  }
}

var options = PluginServer.Options()
options.engine = GRPCSwiftPluginServer()
PluginServer.main(BenchEcho(), options: options)
