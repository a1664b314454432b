internal import DeckhandCore
package import DeckhandPluginHost
internal import DeckhandProtocol
internal import DeckhandClient
internal import Foundation
package import Logging
package import ServiceLifecycle
internal import Synchronization

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
package final class Agent: Service, Sendable {
  /// What the agent was started with.
  package let configuration: AgentConfiguration
  /// The command socket's handlers; register more at any time.
  package let registry = CommandRegistry()
  let store: AgentStore
  let manager: PluginManager
  /// Where plugins' state, logs and sockets go.
  let paths: HostPaths
  let logger: Logger
  let startedAt = ContinuousClock.now
  /// The session with the control plane, when the agent joined one.
  private let controlPlane = Mutex<(task: Task<Void, Never>, reconciler: TaskReconciler?)?>(nil)

  /// Opens the agent's database. Plugins are brought back by ``run()``.
  package init(configuration: AgentConfiguration, logger: Logger) throws {
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
  package func run() async throws {
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
  package func start() async throws -> CommandSocketServer {
    try await manager.restore()
    try registerBuiltinCommands()
    let server = try await CommandSocketServer.bind(
      path: configuration.socketPath, mode: configuration.socketMode, group: configuration.socketGroup,
      registry: registry, timeout: configuration.commandTimeout)
    do {
      try await joinControlPlane()
    } catch {
      await server.close()
      await manager.shutdown()
      throw error
    }
    return server
  }

  /// With `server` set: joins it (once, with the join token; a refused
  /// token fails the start) and keeps a session in the background. A
  /// server that cannot be reached yet is tried again with backoff.
  private func joinControlPlane() async throws {
    guard let serverText = configuration.server else { return }
    let endpoint = try ServerEndpoint(parsing: serverText)
    let state = configuration.stateDirectory
    var membership = ServerMembership.load(state).flatMap { $0.server == endpoint.description ? $0 : nil }
    if membership == nil {
      guard let token = configuration.joinToken else {
        throw DeckhandError(
          .tokenInvalid, "--server \(endpoint) needs --join-token the first time (deckhand tokens create --role worker)"
        )
      }
      do {
        membership = try await ServerMembership.join(
          endpoint, token: token, name: configuration.nodeName, description: await nodeDescription())
        try membership?.save(state)
      } catch let error as DeckhandError where error.code == .serverUnavailable {
        logger.warning("cannot reach the server yet: \(error.message); retrying in the background")
        let task = Task { [self] in
          await reconnecting(timing: ControlPlaneTiming()) { _ in
            let joined = try await ServerMembership.join(
              endpoint, token: token, name: configuration.nodeName, description: await nodeDescription())
            try? joined.save(state)
            await runSession(joined)
            return true
          } failed: { _ in }
        }
        controlPlane.withLock { $0 = (task, nil) }
        return
      }
    }
    guard let membership else { return }
    let task = Task { [self] in await runSession(membership) }
    controlPlane.withLock { $0 = (task, nil) }
  }

  private func runSession(_ membership: ServerMembership) async {
    do {
      let reconciler = try TaskReconciler(
        manager: manager, store: store, membership: membership, stateDirectory: configuration.stateDirectory,
        logger: logger)
      controlPlane.withLock { $0?.reconciler = reconciler }
      let session = try ServerSession(membership: membership, reconciler: reconciler, logger: logger) {
        await self.nodeDescription()
      }
      logger.info(
        "joined the control plane", metadata: ["server": "\(membership.server)", "node": "\(membership.nodeId)"])
      let runner = try JobRunner(
        membership: membership, manager: manager, slots: configuration.jobSlots, logger: logger)
      await withTaskGroup(of: Void.self) { group in
        group.addTask { await reconciler.run() }
        group.addTask { await session.run() }
        group.addTask { await runner.run() }
        await group.next()
        group.cancelAll()
      }
    } catch {
      logger.error("cannot keep a session with the control plane: \(error)")
    }
  }

  /// What the server is told about this node.
  func nodeDescription() async -> Deckhand_Dispatcher_V1_NodeDescription {
    var description = Deckhand_Dispatcher_V1_NodeDescription()
    description.hostname = ProcessInfo.processInfo.hostName
    description.labels = configuration.labels
    description.platform = ArtifactPackage.platform
    description.agentVersion = DeckhandVersion.current
    for entry in await manager.all { description.plugins[entry.record.name] = entry.manifest.version }
    return description
  }

  /// Closes the command socket and detaches from (or stops) the plugins:
  /// the second half of ``run()``.
  package func stop(_ server: CommandSocketServer) async {
    if let session = controlPlane.withLock({ $0 }) {
      session.task.cancel()
      session.reconciler?.finish()
      await session.task.value
    }
    await server.close()
    await manager.shutdown()
  }
}
