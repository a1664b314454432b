internal import DeckhandCore
internal import DeckhandGRPC
internal import DeckhandProtocol
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
internal import Synchronization
internal import NIOPosix
internal import NIOCore
internal import Dispatch

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
    /// Which gRPC server carries the calls. Default: ``Server/lean``, or
    /// what `DECKHAND_PLUGIN_SERVER` (`lean`, `grpc-swift`) says.
    public var server: Server

    /// The gRPC servers the SDK has.
    public enum Server: String, Sendable {
      /// Deckhand's lean server on swift-nio-http2: calls handled on the
      /// connection's event loop.
      case lean
      /// grpc-swift-2 with its NIO transport.
      case grpcSwift = "grpc-swift"
    }

    public init(goPluginHandshakes: [GoPluginHandshakeConfig] = [.deckhand], server: Server? = nil) {
      self.goPluginHandshakes = goPluginHandshakes
      let fromEnvironment = getenv("DECKHAND_PLUGIN_SERVER").flatMap { Server(rawValue: String(cString: $0)) }
      self.server = server ?? fromEnvironment ?? .lean
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
    NIOSingletons.groupLoopCountSuggestion = 1
    _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    Task {
      do {
        try await serve(plugin, options: options)
        exit(0)
      } catch {
        PluginLog.error("plugin server failed: \(error)")
        exit(1)
      }
    }
    dispatchMain()
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
    switch contract {
    case .guestAgent(let address, let errorLogFile):
      socketPath = address
      if let errorLogFile { PluginLog.openErrorLog(errorLogFile) }
    case .goPlugin(_, let directory):
      socketPath = "\(directory)/plugin\(UInt32.random(in: 100_000_000...999_999_999))"
    }
    unlink(socketPath)
    defer { unlink(socketPath) }

    let (stopRequests, requestStop) = AsyncStream.makeStream(of: Void.self)
    let stop: @Sendable () -> Void = { requestStop.yield() }
    let dispatcher = PluginDispatcher(plugin: plugin)
    var handshake: GoPluginHandshake?
    if case .goPlugin(let appVersion, _) = contract {
      handshake = GoPluginHandshake(appVersion: appVersion, network: .unix, address: socketPath)
    }
    switch options.server {
    case .lean:
      let server = try await LeanGRPCServer.bind(
        unixSocket: socketPath, router: LeanPluginServer.router(dispatcher, onStop: stop))
      if let handshake { PluginLog.writeStdout(handshake.line() + "\n") }
      await withTaskGroup(of: Void.self) { group in
        group.addTask {
          await server.waitUntilClosed()
          requestStop.finish()
        }
        group.addTask {
          for await _ in stopRequests {
            server.close()
            break
          }
        }
      }
    case .grpcSwift:
      try await serveOnGRPCSwift(dispatcher, socketPath: socketPath, handshake: handshake, stop: stop) {
        stopRequests
      } finish: {
        requestStop.finish()
      }
    }
  }

  private static func serveOnGRPCSwift<P: Plugin>(
    _ dispatcher: PluginDispatcher<P>, socketPath: String, handshake: GoPluginHandshake?,
    stop: @escaping @Sendable () -> Void, stopRequests: () -> AsyncStream<Void>,
    finish: @escaping @Sendable () -> Void
  ) async throws {
    let stopRequests = stopRequests()
    let transport = HTTP2ServerTransport.Posix(
      address: .unixDomainSocket(path: socketPath),
      transportSecurity: .plaintext
    )
    let server = GRPCServer(
      transport: transport,
      services: [
        GuestAgentService(dispatcher: dispatcher, onStop: stop),
        HealthService(),
        ControllerService(onShutdown: stop),
        BrokerService(),
      ]
    )
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        defer { finish() }
        try await server.serve()
      }
      group.addTask {
        for await _ in stopRequests {
          server.beginGracefulShutdown()
          break
        }
      }
      if let handshake {
        guard (try? await transport.listeningAddress) != nil else {
          stop()
          return
        }
        PluginLog.writeStdout(handshake.line() + "\n")
      }
      try await group.waitForAll()
    }
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
