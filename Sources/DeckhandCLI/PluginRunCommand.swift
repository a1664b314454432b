internal import ArgumentParser
internal import DeckhandCore
internal import DeckhandPluginHost
internal import Foundation
internal import Logging
internal import ServiceLifecycle
internal import UnixSignals

/// `deckhand plugin run MANIFEST`: supervise one plugin in the foreground.
struct PluginRunCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Supervise one plugin in the foreground: health checks, restarts with backoff, graceful stop.",
    discussion: "SIGINT or SIGTERM stop the plugin gracefully (cleanup false) and exit 0."
  )

  enum EventFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
  }

  @OptionGroup var logging: LogOptions

  @OptionGroup var host: HostOptions

  @Option(help: "How to print events: text, or json (one object a line on stdout).")
  var events: EventFormat = .text

  @Flag(help: "Also print the plugin's stdout and stderr lines.")
  var showOutput = false

  func run() async throws {
    let manifest = try host.loadManifest()
    let format = events
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let emit: @Sendable (PluginEvent) -> Void = { event in
      switch format {
      case .json:
        if let data = try? encoder.encode(event) {
          FileHandle.standardOutput.write(data + Data("\n".utf8))
        }
      case .text:
        FileHandle.standardOutput.write(Data((Self.describe(event) + "\n").utf8))
      }
    }
    var launcher = PluginLauncher(paths: host.paths)
    if showOutput {
      launcher.onOutputLine = { plugin, stream, line in
        FileHandle.standardError.write(Data("[\(plugin) \(stream)] \(line)\n".utf8))
      }
    }
    let logger = try logging.logger("deckhand", defaultLevel: .warning)
    let supervisor = PluginSupervisor(
      manifest: manifest, launcher: launcher, transport: host.transport.transport, logger: logger, onEvent: emit)
    let group = ServiceGroup(
      configuration: .init(
        services: [.init(service: supervisor, successTerminationBehavior: .gracefullyShutdownGroup)],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger))
    try await group.run()
  }

  static func describe(_ event: PluginEvent) -> String {
    var parts = ["\(event.plugin): \(event.event.rawValue)"]
    if let pid = event.pid { parts.append("pid=\(pid)") }
    for (key, value) in event.fields {
      switch value {
      case .string(let text): parts.append("\(key)=\(text)")
      case .number(let number):
        parts.append("\(key)=\(number.rounded() == number ? String(Int64(number)) : String(format: "%.3f", number))")
      case .bool(let flag): parts.append("\(key)=\(flag)")
      case .array(let items): parts.append("\(key)=[\(items.count) lines]")
      default: break
      }
    }
    var text = parts.joined(separator: " ")
    for (key, lines) in [("stderr", event.lastLines.stderr), ("errorl", event.lastLines.errorLog)] {
      for line in lines.suffix(5) { text += "\n    \(key) | \(line)" }
    }
    return text
  }
}
