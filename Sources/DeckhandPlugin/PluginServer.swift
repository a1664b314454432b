internal import DeckhandCore
internal import DeckhandGRPC
internal import DeckhandPluginProtocol
internal import NIOCore
internal import NIOPosix
internal import Synchronization

#if canImport(Glibc)
  internal import Glibc
#endif

/// Serves a ``Plugin`` under whichever launch contract started the process.
///
/// - guest-agent (`--protocol=unix --address=SOCKET --errorlogfile=LOG`):
///   serves on `SOCKET`; errors go to `LOG`.
/// - go-plugin (a matching magic cookie and `PLUGIN_PROTOCOL_VERSIONS` in the
///   environment): serves on a new socket, prints the handshake line on
///   stdout, answers `grpc.health.v1` for service `plugin` and exits on
///   `plugin.GRPCController/Shutdown`.
///
/// Run by hand, without either, it says so and exits with status 1.
public enum PluginServer {
  /// What a plugin may tune.
  public struct Options: Sendable {
    /// The go-plugin cookies accepted. Default: Deckhand's own.
    public var goPluginHandshakes: [GoPluginHandshakeConfig]
    /// The gRPC server that carries the calls: ``LeanPluginServer`` unless
    /// a benchmark swaps in another.
    package var engine: any PluginServerEngine = LeanPluginServer()

    public init(goPluginHandshakes: [GoPluginHandshakeConfig] = [.deckhand]) {
      self.goPluginHandshakes = goPluginHandshakes
    }
  }

  /// Serves `plugin` until the host stops it, then exits the process. Call
  /// it from synchronous top-level code (a `main.swift` without `await`):
  ///
  /// ```swift
  /// PluginServer.main(Hello())
  /// ```
  ///
  /// Before any Swift concurrency starts it makes one NIO event loop the
  /// global executor, so that the plugin's methods run on the thread that
  /// reads and writes its socket: no hops between threads per call, and one
  /// thread instead of one per core.
  public static func main(_ plugin: some Plugin, options: Options = Options()) -> Never {
    runMain { try await serve(plugin, options: options) }
  }

  /// Makes one NIO event loop the global executor, runs `serve` and exits
  /// the process when it returns (status 0) or throws (status 1): what
  /// ``main(_:options:)`` and `PluginTracing.main` share.
  package static func runMain(_ serve: @escaping @Sendable () async throws -> Void) -> Never {
    HotText.prefault()
    NIOSingletons.groupLoopCountSuggestion = 1
    _ = EventLoopExecutor.install()
    Task {
      do {
        try await serve()
        exit(0)
      } catch {
        PluginLog.error("plugin server failed: \(error)")
        exit(1)
      }
    }
    MainQueue.serve()
  }

  /// Serves `plugin` until the host stops it. Call it from an async `main`;
  /// ``main(_:options:)`` is faster.
  public static func serve(_ plugin: some Plugin, options: Options = Options()) async throws {
    let arguments = Array(CommandLine.arguments.dropFirst())
    let environment = Self.environment()
    let contract: LaunchContract?
    do {
      contract = try LaunchContract.detect(
        arguments: arguments, environment: environment, handshakes: options.goPluginHandshakes.map(\.manifestHandshake))
    } catch {
      PluginLog.error("cannot serve: \(error.message)")
      exit(1)
    }
    guard let contract else {
      PluginLog.write(
        "This binary is a Deckhand plugin. It is not meant to be run directly: the host launches it with --protocol=unix --address=SOCKET, or as a go-plugin plugin with its magic cookie set. Try `deckhand plugin run plugin.json`.\n"
      )
      exit(1)
    }
    let socketPath: String
    var listen: PluginListenAddress
    switch contract {
    case .guestAgent(let address, let errorLogFile):
      socketPath = address
      listen = .unix(path: address)
      if let errorLogFile { PluginLog.openErrorLog(errorLogFile) }
    case .guestAgentTCP(let host, let port, let errorLogFile):
      socketPath = ""
      listen = .tcp(host: host, port: port)
      if let errorLogFile { PluginLog.openErrorLog(errorLogFile) }
    case .goPlugin(_, let directory):
      socketPath = "\(directory)/plugin\(UInt32.random(in: 100_000_000...999_999_999))"
      listen = .unix(path: socketPath)
    }
    if !socketPath.isEmpty { unlink(socketPath) }
    defer { if !socketPath.isEmpty { unlink(socketPath) } }

    let handshake: GoPluginHandshake? =
      if case .goPlugin(let appVersion, _) = contract {
        GoPluginHandshake(appVersion: appVersion, network: .unix, address: socketPath)
      } else {
        nil
      }
    try await options.engine.serve(
      PluginDispatcher(plugin: plugin), address: listen,
      announce: { if let handshake { PluginLog.writeStdout(handshake.line() + "\n") } })
  }

  private static func environment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
      let text = String(cString: entry)
      if let equals = text.firstIndex(of: "=") {
        result[String(text[..<equals])] = String(text[text.index(after: equals)...])
      }
      pointer += 1
    }
    return result
  }
}
