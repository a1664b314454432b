internal import DeckhandCore
internal import DeckhandPluginHost
internal import Foundation
public import Logging
public import ServiceLifecycle

/// `deckhand agent`: keeps the installed plugins running and serves the
/// command socket, until graceful shutdown (SIGTERM, SIGINT).
///
/// On shutdown the plugins are left running for the next agent to
/// re-attach, unless ``AgentConfiguration/stopPluginsOnExit`` is set.
///
/// ```swift
/// let agent = try Agent(configuration: .defaults(), logger: logger)
/// let group = ServiceGroup(services: [agent], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
/// try await group.run()
/// ```
public final class Agent: Service, Sendable {
  /// What the agent was started with.
  public let configuration: AgentConfiguration
  /// The command socket's handlers; register more at any time.
  public let registry = CommandRegistry()
  let store: AgentStore
  let manager: PluginManager
  /// Where plugins' state, logs and sockets go.
  let paths: HostPaths
  let logger: Logger
  let startedAt = ContinuousClock.now

  /// Opens the agent's database. Plugins are brought back by ``run()``.
  public init(configuration: AgentConfiguration, logger: Logger) throws {
    self.configuration = configuration
    self.logger = logger
    store = try AgentStore(stateDirectory: configuration.stateDirectory)
    paths = HostPaths(
      stateDirectory: configuration.stateDirectory, runtimeDirectory: configuration.runtimeDirectory)
    let trust =
      configuration.trustedKeysDirectory != nil || configuration.requireSigned
      ? try TrustPolicy(directory: configuration.trustedKeysDirectory, requireSigned: configuration.requireSigned)
      : nil
    manager = PluginManager(
      store: store, launcher: PluginLauncher(paths: paths, outliveHost: true),
      shutdownBehaviour: configuration.stopPluginsOnExit ? .stopPlugin : .leaveRunning, trust: trust,
      registry: registry, logger: logger)
  }

  /// Brings back the installed plugins, serves the command socket, and on
  /// graceful shutdown closes the socket and detaches from (or stops) the
  /// plugins.
  public func run() async throws {
    let server = try await start()
    let count = await manager.all.count
    logger.info(
      "agent serving",
      metadata: [
        "socket": "\(configuration.socketPath)", "state_dir": "\(configuration.stateDirectory)",
        "plugins": "\(count)",
      ])
    try? await gracefulShutdown()
    await stop(server)
    logger.info(
      "agent stopped", metadata: ["plugins": .string(configuration.stopPluginsOnExit ? "stopped" : "left running")])
  }

  /// Brings back the installed plugins and starts serving the command
  /// socket: the first half of ``run()``, for embedding.
  public func start() async throws -> CommandSocketServer {
    try await manager.restore()
    try registerBuiltinCommands()
    return try await CommandSocketServer.bind(
      path: configuration.socketPath, mode: configuration.socketMode, group: configuration.socketGroup,
      registry: registry, timeout: configuration.commandTimeout)
  }

  /// Closes the command socket and detaches from (or stops) the plugins:
  /// the second half of ``run()``.
  public func stop(_ server: CommandSocketServer) async {
    await server.close()
    await manager.shutdown()
  }
}
