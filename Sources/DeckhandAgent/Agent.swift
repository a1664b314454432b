internal import DeckhandClient
internal import DeckhandCore
package import DeckhandPluginHost
internal import DeckhandProtocol
internal import DeckhandRuntime
internal import DeckhandTelemetry
internal import Foundation
package import Logging
package import ServiceLifecycle

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
  /// What the agent counts for Prometheus (``AgentMetrics/off`` without
  /// `--metrics-listen`), and where it serves them.
  let metrics: AgentMetrics
  private let metricsEndpoint: MetricsEndpoint?

  /// Makes the state directory private (``StateDirectory/secure(_:traversable:)``)
  /// and opens the agent's database. Plugins are brought back by ``run()``.
  package init(configuration: AgentConfiguration, logger: Logger) throws {
    self.configuration = configuration
    self.logger = logger
    try StateDirectory.secure(configuration.stateDirectory, traversable: ["plugins", "logs", "verified"])
    store = try AgentStore(stateDirectory: configuration.stateDirectory)
    paths = HostPaths(
      stateDirectory: configuration.stateDirectory, runtimeDirectory: configuration.runtimeDirectory)
    let trust =
      configuration.trustedKeysDirectory != nil || configuration.requireSigned
      ? try TrustPolicy(directory: configuration.trustedKeysDirectory, requireSigned: configuration.requireSigned)
      : nil
    let registry = configuration.metricsListen.map { _ in MetricsRegistry() }
    metrics = AgentMetrics(registry)
    metricsEndpoint = configuration.metricsListen.flatMap { listen in
      registry.map { MetricsEndpoint(host: listen.host, port: listen.port, registry: $0, logger: logger) }
    }
    var launcher = PluginLauncher(paths: paths, outliveHost: true)
    launcher.tracesEndpoint = configuration.otlpEndpoint
    manager = PluginManager(
      store: store, launcher: launcher,
      shutdownBehaviour: configuration.stopPluginsOnExit ? .stopPlugin : .leaveRunning, trust: trust,
      registry: self.registry, metrics: metrics, logger: logger)
    metrics.observeCommands(self.registry)
    metrics.collect(manager)
  }

  /// The port `/metrics` is served on once bound; nil when metrics are
  /// off or the port could not be bound.
  package var metricsPort: Int? {
    get async { await metricsEndpoint?.listeningPort }
  }

  /// Brings back the installed plugins, serves the command socket, and on
  /// graceful shutdown closes the socket and detaches from (or stops) the
  /// plugins.
  package func run() async throws {
    try await run { _ in
      let count = await manager.all.count
      logger.info(
        "agent serving",
        metadata: [
          "socket": "\(configuration.socketPath)", "state_dir": "\(configuration.stateDirectory)",
          "plugins": "\(count)",
        ])
      try? await gracefulShutdown()
    }
    logger.info(
      "agent stopped", metadata: ["plugins": .string(configuration.stopPluginsOnExit ? "stopped" : "left running")])
  }

  /// Brings back the installed plugins, serves the command socket, joins
  /// the server (if one is configured) and calls `body` with the socket's
  /// server. When `body` returns (or throws), ends the session with the
  /// server, closes the socket and detaches from (or stops) the plugins.
  /// The session with the server is a child task of this call.
  package func run(_ body: (CommandSocketServer) async throws -> Void) async throws {
    // Jobs live only in this process: what a previous agent's jobs left
    // running (it was killed) has no record any more, and ends now.
    let owner = JobProcess.Owner(stateDirectory: configuration.stateDirectory)
    if let ended = try? await BlockingWork.run({ owner.sweepLeftovers() }), ended > 0 {
      logger.warning("ended \(ended) process(es) left by the previous agent's jobs")
    }
    try await withThrowingTaskGroup(of: Void.self) { group in
      // The plugins' supervisors are children of this call too.
      group.addTask { await self.manager.run() }
      let outcome: Result<Void, any Error>
      do {
        try await serve(body)
        outcome = .success(())
      } catch {
        outcome = .failure(error)
      }
      await manager.shutdown()
      try await group.waitForAll()
      // The runner ended its jobs with the session; nothing of them may
      // outlive the agent, and their cgroup folder goes.
      _ = try? await BlockingWork.run { owner.sweepLeftovers() }
      try outcome.get()
    }
  }

  /// Restores the plugins, binds the socket, keeps the session with the
  /// server (a child task) while `body` runs, and closes the socket.
  private func serve(_ body: (CommandSocketServer) async throws -> Void) async throws {
    try await manager.restore()
    try registerBuiltinCommands()
    let server = try await CommandSocketServer.bind(
      path: configuration.socketPath, mode: configuration.socketMode, group: configuration.socketGroup,
      registry: registry, timeout: configuration.commandTimeout)
    let outcome: Result<Void, any Error>
    do {
      let session = try await joinControlPlane()
      outcome = await withTaskGroup(of: Void.self) { group in
        if let session { group.addTask { await session() } }
        if let endpoint = metricsEndpoint {
          group.addTask {
            do { try await endpoint.run() } catch { self.logger.error("\(error)") }
          }
        }
        let outcome: Result<Void, any Error>
        do {
          if let endpoint = metricsEndpoint, await endpoint.listeningPort == nil {
            throw DeckhandError(
              .configurationInvalid,
              "cannot serve metrics on \(configuration.metricsListen.map { "\($0)" } ?? "") (is the port taken?)")
          }
          try await body(server)
          outcome = .success(())
        } catch {
          outcome = .failure(error)
        }
        group.cancelAll()
        return outcome
      }
    } catch {
      outcome = .failure(error)
    }
    await server.close()
    try outcome.get()
  }

  /// With `server` set: joins it (once, with the join token; a refused
  /// token fails the start) and returns the work that keeps a session with
  /// it, for the caller to run as a child task. A server that cannot be
  /// reached yet is tried again with backoff by that work.
  private func joinControlPlane() async throws -> (@Sendable () async -> Void)? {
    guard let serverText = configuration.server else { return nil }
    let endpoints = try ServerList.parse(serverText)
    // The replicas as given, in order: what the membership remembers.
    let servers = endpoints.map(\.description).joined(separator: ",")
    let state = configuration.stateDirectory
    if let membership = ServerMembership.load(state).flatMap({ $0.server == servers ? $0 : nil }) {
      return { await self.runSession(membership) }
    }
    guard let token = configuration.joinToken else {
      throw DeckhandError(
        .tokenInvalid, "--server \(servers) needs --join-token the first time (deckhand tokens create --role worker)"
      )
    }
    /// Joins through the first replica that answers.
    @Sendable func join() async throws -> ServerMembership {
      var unavailable: DeckhandError?
      for endpoint in endpoints {
        do {
          var membership = try await ServerMembership.join(
            endpoint, token: token, name: configuration.nodeName, description: await nodeDescription())
          membership.server = servers
          return membership
        } catch let error as DeckhandError where error.code == .serverUnavailable {
          unavailable = error
        }
      }
      throw unavailable ?? DeckhandError(.serverUnavailable, "no server in \(servers) answers")
    }
    do {
      let membership = try await join()
      try membership.save(state)
      return { await self.runSession(membership) }
    } catch let error as DeckhandError where error.code == .serverUnavailable {
      logger.warning("cannot reach the server yet: \(error.message); retrying in the background")
      let logger = self.logger
      return {
        // One line a minute at most, saying how many attempts failed
        // quietly since the last one.
        var lastLine = ContinuousClock.now
        var quiet = 0
        await reconnecting(timing: ControlPlaneTiming()) { _ in
          let joined = try await join()
          try? joined.save(state)
          await self.runSession(joined)
          return true
        } failed: { error in
          quiet += 1
          guard lastLine.duration(to: .now) >= .seconds(60) else { return }
          let why = (error as? DeckhandError)?.message ?? "\(error)"
          logger.warning("joining \(servers) failed \(quiet) time(s) in the last minute, last: \(why); retrying")
          lastLine = .now
          quiet = 0
        }
      }
    }
  }

  private func runSession(_ membership: ServerMembership) async {
    do {
      let servers = try ServerList(parsing: membership.server)
      let reconciler = TaskReconciler(
        manager: manager, store: store, membership: membership, servers: servers,
        stateDirectory: configuration.stateDirectory, packageLimits: configuration.packageLimits, logger: logger)
      let (manager, reports) = (self.manager, metrics.reports)
      let session = ServerSession(
        membership: membership, servers: servers, reconciler: reconciler, logger: logger,
        report: {
          var beat = Deckhand_Dispatcher_V1_HeartbeatRequest()
          let entries = await manager.all
          let usage = (try? await BlockingWork.run { PluginManager.usage(of: entries) }) ?? [:]
          beat.plugins = usage.sorted { $0.key < $1.key }.map { name, sample in
            var message = Deckhand_Dispatcher_V1_PluginUsage()
            message.plugin = name
            message.cpuSeconds = sample.usage.cpuSeconds
            message.residentBytes = sample.usage.residentBytes
            return message
          }
          let (events, dropped) = reports.take()
          beat.events = events
          beat.droppedEvents = Int32(clamping: dropped)
          return beat
        },
        logs: PluginLogReader(manager: manager, paths: paths, logger: logger)
      ) {
        await self.nodeDescription()
      }
      logger.info(
        "joined the control plane", metadata: ["server": "\(membership.server)", "node": "\(membership.nodeId)"])
      let runner = JobRunner(
        membership: membership, servers: servers, manager: manager, slots: configuration.jobSlots,
        owner: JobProcess.Owner(stateDirectory: configuration.stateDirectory), metrics: metrics, logger: logger)
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
}
