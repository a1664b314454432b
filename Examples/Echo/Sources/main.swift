// deckhand-example-echo: a plugin built on the Deckhand SDK. It records what
// the host sends (the Start config, every Apply) and reports it in GetStatus;
// GetStatus with data echoes the data back.
import DeckhandPlugin
import Synchronization

final class EchoPlugin: Plugin {
  private struct Record {
    var stateDirectory = ""
    var config = "none"
    var applies = 0
    var appliedBytes = 0
    var lastType = ""
  }

  private let record = Mutex(Record())

  func start(_ context: StartContext) async throws {
    let config: String =
      switch context.config {
      case .none: "none"
      case .string(let text): "string:\(text)"
      case .structure(let structure): "struct:\((try? structure.jsonString()) ?? "?")"
      }
    record.withLock {
      $0.stateDirectory = context.stateDirectory
      $0.config = config
    }
  }

  func status(data: String?) async throws -> PluginStatus {
    if let data { return PluginStatus(code: 0, results: [data]) }
    return record.withLock {
      PluginStatus(
        code: 0,
        results: [
          "state_directory=\($0.stateDirectory)",
          "config=\($0.config)",
          "applies=\($0.applies) bytes=\($0.appliedBytes) last_type=\($0.lastType)",
        ])
    }
  }

  func apply(_ payload: Google_Protobuf_Any) async throws {
    record.withLock {
      $0.applies += 1
      $0.appliedBytes += payload.value.count
      $0.lastType = payload.typeURL
    }
  }
}

// Deckhand's own go-plugin cookie, and the one of the go-plugin peer in
// ../shared/peers/goplugin, so that its go-plugin host can launch this plugin.
PluginServer.main(
  EchoPlugin(),
  options: .init(goPluginHandshakes: [
    .deckhand,
    .init(cookieKey: "GAPEER_PLUGIN_COOKIE", cookieValue: "guest-agent-plugin-v1", appVersion: 1),
  ])
)
