internal import ArgumentParser
internal import DeckhandCore
internal import DeckhandPluginHost
internal import Foundation

/// `deckhand plugin`: work with one plugin directly.
struct PluginCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "plugin",
    abstract: "Check, benchmark or supervise one plugin.",
    subcommands: [
      PluginRunCommand.self, PluginCheckCommand.self, PluginBenchCommand.self, PluginSignCommand.self,
      PluginK8sManifestCommand.self,
    ]
  )
}

/// Options every `plugin` subcommand shares.
struct HostOptions: ParsableArguments {
  @Argument(help: "The plugin's manifest (plugin.json).")
  var manifest: String

  @Option(
    help:
      "State root: plugins' state directories and error logs. Default: /var/lib/deckhand as root, $XDG_STATE_HOME/deckhand otherwise."
  )
  var stateDir: String?

  @Option(help: "Runtime root for plugin sockets. Default: /run/deckhand as root, $XDG_RUNTIME_DIR/deckhand otherwise.")
  var runtimeDir: String?

  @Option(
    help: "How the host talks to plugins: lean (Deckhand's gRPC on swift-nio-http2) or grpc-swift (grpc-swift-2).")
  var transport: TransportChoice = .lean

  enum TransportChoice: String, ExpressibleByArgument, CaseIterable {
    case lean
    case grpcSwift = "grpc-swift"

    var transport: any PluginTransport {
      switch self {
      case .lean: LeanPluginTransport()
      case .grpcSwift: GRPCPluginTransport()
      }
    }
  }

  var paths: HostPaths {
    let defaults = HostPaths.defaults()
    return HostPaths(
      stateDirectory: stateDir.map(Self.absolute) ?? defaults.stateDirectory,
      runtimeDirectory: runtimeDir.map(Self.absolute) ?? defaults.runtimeDirectory)
  }

  /// Loads the manifest, or prints its problems and exits with status 2.
  func loadManifest() throws -> PluginManifest {
    do {
      return try PluginManifest.load(path: manifest)
    } catch let error as DeckhandError {
      FileHandle.standardError.write(Data("deckhand: \(error.message)\n".utf8))
      throw ExitCode(2)
    }
  }

  static func absolute(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
  }
}
