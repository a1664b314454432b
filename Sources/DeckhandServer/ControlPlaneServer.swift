package import DeckhandClient
package import DeckhandCore
internal import DeckhandProtocol
internal import DeckhandRuntime
internal import DeckhandTelemetry
package import Foundation
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
package import Logging
internal import NIOPosix
package import ServiceLifecycle

/// `deckhand server`: the dispatcher for agents and the operator's API on
/// one TLS port, state in SQLite, its own CA.
///
/// On first start it makes its CA and serving certificate, a worker join
/// token and an operator token (`STATE/worker-token`, `STATE/operator-token`,
/// 0600), and writes the operator's token and address where a local CLI
/// finds them (``ClientSettings``).
package final class ControlPlaneServer: Service, Sendable {
  package struct Configuration: Sendable {
    package var listen: ServerEndpoint
    package var stateDirectory: String
    /// PostgreSQL instead of SQLite in the state directory (replicas
    /// share one database); nil: SQLite.
    package var databaseURL: DatabaseURL?
    /// The address agents are told to reach this replica at; nil: the
    /// listening address (127.0.0.1 for a wildcard).
    package var advertise: ServerEndpoint?
    package var timing = ControlPlaneTiming()
    package var jobTiming = JobQueue.Timing()
    /// What the server admits of connections that have not authenticated.
    package var connectionLimits = ConnectionLimits()
    /// Where the CLI settings go; nil: don't write them.
    package var clientSettingsPath: String? = ClientSettings.defaultPath
    /// Where Prometheus scrapes `/metrics` (port 0: any free port); nil:
    /// no metrics are kept.
    package var metricsListen: ServerEndpoint?
    /// How long fleet events are kept (`deckhand events`).
    package var eventRetention: Duration = .seconds(7 * 86_400)
    /// Where the process exports traces (``TraceExport``, bootstrapped by
    /// the caller); nil: no traces. When set, each gRPC call runs in a span
    /// that continues its caller's trace, and queued jobs keep that trace
    /// for their runners.
    package var tracesEndpoint: String?
    /// Where the web UI is served over HTTPS (port 0: any free port); nil:
    /// no web UI.
    package var httpListen: ServerEndpoint?
    package init(listen: ServerEndpoint, stateDirectory: String) {
      self.listen = listen
      self.stateDirectory = stateDirectory
    }
  }

  /// A serving server, as ``run(_:)`` hands it to its body.
  package struct Running: Sendable {
    package let plane: ControlPlane
    package let jobs: JobQueue
    /// The address agents and the CLI use.
    package let endpoint: ServerEndpoint
    /// Tokens made on this start (first start only), else read back.
    package let workerToken: String
    package let operatorToken: String
    /// The port `/metrics` is served on, when metrics are on.
    package let metricsPort: Int?
    /// The port the web UI is served on (HTTPS), when it is on.
    package var httpPort: Int?
  }

  package let configuration: Configuration
  let logger: Logger

  package init(configuration: Configuration, logger: Logger) {
    self.configuration = configuration
    self.logger = logger
  }

  /// Serves until graceful shutdown (SIGTERM or SIGINT in a
  /// `ServiceGroup`).
  package func run() async throws {
    try await run { running in
      logger.info(
        "server serving",
        metadata: [
          "address": "\(running.endpoint)", "state_dir": "\(configuration.stateDirectory)",
          "web": "\(running.httpPort.map { "https://\(running.endpoint.host):\($0)/" } ?? "off")",
        ])
      try? await gracefulShutdown()
    }
  }

  /// What runs under ``run(_:)`` and why it ended.
  private enum Child: Sendable {
    case serving
    case loops
    case metrics
    case web
    case deadline
  }

  /// Opens the state, serves, runs the reconcile loop and the sweepers,
  /// and calls `body` with the running server. When `body` returns (or
  /// throws), ends sessions and streams and stops serving: gracefully,
  /// then (after 5 s) by cancelling what still runs. Everything long-lived
  /// is a child task of this call.
  package func run(_ body: (Running) async throws -> Void) async throws {
    try StateDirectory.secure(configuration.stateDirectory)
    if let url = configuration.databaseURL {
      try await PostgresServerStore.with(url: url, logger: logger) { store in
        logger.info("state in PostgreSQL", metadata: ["database": "\(url)"])
        try await run(store: store, body)
      }
    } else {
      try await run(store: try SQLiteServerStore(stateDirectory: configuration.stateDirectory), body)
    }
  }

  /// ``run(_:)`` on `store`.
  private func run(store: any ServerStore, _ body: (Running) async throws -> Void) async throws {
    let state = configuration.stateDirectory
    // After a restart nobody is known to be up: nodes become READY as they
    // come back.
    // Replicas on PostgreSQL: events between them, and one leader.
    let postgres = store as? PostgresServerStore
    let bus = ReplicaBus(store: postgres, replicaId: ControlPlane.randomText(bytes: 8), logger: logger)
    let leadership = Leadership(store: postgres, logger: logger)
    // After a restart of the one server nobody is known to be up: nodes
    // become READY as they come back. Replicas leave that to the replica
    // that holds each node's session (and the leader's stale-node sweep).
    if postgres == nil { try await store.setAllNodes(status: .unknown) }
    var hosts = ["localhost", "127.0.0.1", ProcessInfo.processInfo.hostName]
    if !["0.0.0.0", "::", ""].contains(configuration.listen.host) { hosts.append(configuration.listen.host) }
    let authority = try await CertificateAuthority.load(store: store, directory: "\(state)/tls", hosts: hosts)

    let gate = ConnectionGate(limits: configuration.connectionLimits, logger: logger)
    var transportConfig = HTTP2ServerTransport.Custom<GatedListener>.Config.defaults
    // Each method's own limit is MessageSizeLimit's (and says so to the
    // caller); this is grpc-swift's backstop above all of them.
    transportConfig.rpc.maxRequestPayloadSize = 8 << 20
    transportConfig.channelDebuggingCallbacks.onAcceptHTTP2Stream = MessageSizeLimit.install
    transportConfig.http2.maxConcurrentStreams = configuration.connectionLimits.maxStreamsPerConnection
    // A peer that vanished without a FIN (a half-open connection) answers
    // no ping and is closed; a connection without calls for 15 minutes is
    // closed too (clients reconnect on their next call).
    transportConfig.connection.keepalive = .init(
      time: .seconds(60), timeout: .seconds(20),
      clientBehavior: .init(minPingIntervalWithoutCalls: .seconds(10), allowWithoutCalls: true))
    transportConfig.connection.maxIdleTime = .seconds(15 * 60)
    let transport = HTTP2ServerTransport.Custom(
      listenerFactory: GatedListener(
        host: configuration.listen.host, port: configuration.listen.port,
        certificateChainPEM: authority.serverCertificatePEM, privateKeyPEM: authority.serverKeyPEM, gate: gate,
        eventLoopGroup: MultiThreadedEventLoopGroup.singleton),
      config: transportConfig)
    let registry = configuration.metricsListen.map { _ in MetricsRegistry() }
    let metrics = ServerMetrics(registry)
    if let registry { store.timing.attach(registry, store: postgres == nil ? "sqlite" : "postgres") }
    let plane = try await ControlPlane(
      store: store, authority: authority, timing: configuration.timing, artifactsDirectory: "\(state)/artifacts",
      advertisedAddresses: [], logger: logger, bus: bus, leadership: leadership, metrics: metrics,
      eventRetention: configuration.eventRetention)
    let jobs = JobQueue(
      store: store, timing: configuration.jobTiming, bus: bus, metrics: metrics, events: plane.events)
    metrics.collect(plane)
    bus.onEvents { events in
      for event in events {
        await plane.received(event)
        jobs.received(event)
      }
    }
    // The server was away: its runners could not send heartbeats, which is
    // no fault of theirs. Each running job's clock starts again now.
    try await store.restartHeartbeats(nowMs: nowMs())
    plane.onPlacementChanged { jobs.nodeChanged($0) }
    plane.onStateRestored { jobs.stateRestored() }
    let relay = ExecRelay()
    let logs = LogRelay()
    plane.onNodeRemoved { removal in
      jobs.released(removal.releasedJobs)
      relay.endNode(removal.node.id)
      logs.endNode(removal.node.id)
    }
    let services: [any RegistrableRPCService] = [
      DispatcherService(plane: plane, logs: logs),
      ControlService(plane: plane, snapshots: "\(state)/snapshots", logs: logs),
      JobsService(plane: plane, queue: jobs, relay: relay),
    ]
    var interceptors: [any ServerInterceptor] = [ConnectionAuthentication(plane: plane, gate: gate)]
    if let registry {
      interceptors.insert(
        GRPCServerMetrics(registry: registry, services: services, transport: type(of: transport)), at: 0)
    }
    if configuration.tracesEndpoint != nil { interceptors.insert(ServerTracingInterceptor(), at: 0) }
    let server = GRPCServer(transport: transport, services: services, interceptors: interceptors)
    var endpoint: MetricsEndpoint?
    if let listen = configuration.metricsListen, let registry {
      endpoint = MetricsEndpoint(host: listen.host, port: listen.port, registry: registry, logger: logger)
    }
    let logger = self.logger
    let configuration = self.configuration
    let web = WebUI(plane: plane, jobs: jobs, logs: logs, logger: logger)
    // The web UI's port once it listens; 0 when it could not.
    let webPort = OnceValue<Int>()

    try await withThrowingTaskGroup(of: Child.self) { group in
      if let listen = configuration.httpListen {
        group.addTask {
          do {
            try await web.run(
              host: listen.host, port: listen.port, certificateChainPEM: authority.serverCertificatePEM,
              privateKeyPEM: authority.serverKeyPEM
            ) { _ = webPort.set($0) }
          } catch {
            logger.error("the web UI stopped: \(error)")
          }
          _ = webPort.set(0)
          return .web
        }
      }
      group.addTask {
        try await server.serve()
        return .serving
      }
      if let endpoint {
        group.addTask {
          try await endpoint.run()
          return .metrics
        }
      }
      // Whatever happens below, the server and the loops end with this
      // call: sessions and streams first, then serving, forced after 5 s.
      func shutDown() async throws {
        plane.endSessions()
        jobs.close()
        plane.events.close()
        relay.close()
        logs.close()
        server.beginGracefulShutdown()
        group.addTask {
          try? await Task.sleep(for: .seconds(5))
          return .deadline
        }
        var open = 2  // serving, loops
        while open > 0, let child = try await group.next() {
          switch child {
          case .deadline: open = 0
          case .serving, .loops: open -= 1
          // The metrics endpoint and the web UI end when cancelled below.
          case .metrics, .web: break
          }
        }
        group.cancelAll()
      }

      guard let address = await transport.listeningAddress, let port = address.ipv4?.port ?? address.ipv6?.port
      else {
        group.cancelAll()
        let failure: String
        do {
          _ = try await group.next()
          failure = "the listener closed"
        } catch {
          failure = "\(error)"
        }
        throw DeckhandError(.configurationInvalid, "cannot listen on \(configuration.listen): \(failure)")
      }
      let advertised = configuration.advertise ?? Self.advertised(configuration.listen, port: port)
      try await plane.refreshReplicas(id: bus.replicaId, address: advertised.description)
      group.addTask {
        await Self.runLoops(
          plane: plane, jobs: jobs, replicas: (bus, leadership, advertised.description),
          period: configuration.timing.heartbeatPeriod, logger: logger)
        return .loops
      }
      do {
        var metricsPort: Int?
        if let endpoint, let listen = configuration.metricsListen {
          guard let bound = await endpoint.listeningPort else {
            throw DeckhandError(.configurationInvalid, "cannot serve metrics on \(listen) (is the port taken?)")
          }
          metricsPort = bound
        }
        var running = try await Self.provision(
          plane: plane, store: store, jobs: jobs, configuration: configuration, port: port, metricsPort: metricsPort)
        if let listen = configuration.httpListen {
          guard let bound = await webPort.wait(), bound > 0 else {
            throw DeckhandError(.configurationInvalid, "cannot serve the web UI on \(listen) (is the port taken?)")
          }
          running.httpPort = bound
        }
        plane.requestReconcile()
        try Self.announce(running, in: state)
        try await body(running)
      } catch {
        try? FileManager.default.removeItem(atPath: Self.servingFile(state))
        try await shutDown()
        throw error
      }
      try? FileManager.default.removeItem(atPath: Self.servingFile(state))
      try await shutDown()
    }
  }

  /// The reconcile loop and the two sweepers, until the plane and the
  /// queue are closed (``ControlPlane/endSessions()``, ``JobQueue/close()``).
  private static func runLoops(
    plane: ControlPlane, jobs: JobQueue, replicas: (bus: ReplicaBus, leadership: Leadership, address: String),
    period: Duration, logger: Logger
  ) async {
    await withTaskGroup(of: Void.self) { group in
      group.addTask { await plane.runReconcileLoop() }
      group.addTask { await plane.events.run() }
      // The replicas' events and the leader's lock, until the queue closes.
      group.addTask {
        await withTaskGroup(of: Void.self) { inner in
          inner.addTask { await replicas.bus.run() }
          inner.addTask { await replicas.leadership.run { leads in if leads { plane.requestReconcile() } } }
          // This replica in the store's list, and the list agents get.
          inner.addTask {
            var streak = FailureStreak()
            while !Task.isCancelled {
              try? await Task.sleep(for: .seconds(5))
              do {
                try await plane.refreshReplicas(id: replicas.bus.replicaId, address: replicas.address)
                log(streak.succeeded(), "replica announcement", logger: logger)
              } catch {
                log(streak.failed(), "replica announcement", error: error, logger: logger)
              }
            }
          }
          // Until the queue closes (or this task is cancelled): a wait
          // that returns at once once cancelled must not loop.
          while !jobs.isClosed && !Task.isCancelled { await jobs.changes.closed(orAfter: .seconds(60)) }
          inner.cancelAll()
        }
      }
      group.addTask {
        let tick = min(period / 4, .seconds(1))
        var streak = FailureStreak()
        while !jobs.isClosed && !Task.isCancelled {
          await jobs.changes.closed(orAfter: tick)
          do {
            try await plane.sweep()
            log(streak.succeeded(), "heartbeat sweep", logger: logger)
          } catch {
            log(streak.failed(), "heartbeat sweep", error: error, logger: logger)
          }
        }
      }
      group.addTask {
        var streak = FailureStreak()
        while !jobs.isClosed && !Task.isCancelled {
          await jobs.changes.closed(orAfter: .milliseconds(250))
          do {
            if plane.isLeader { try await jobs.sweep() }
            log(streak.succeeded(), "job sweep", logger: logger)
          } catch {
            log(streak.failed(), "job sweep", error: error, logger: logger)
          }
        }
      }
    }
  }

  /// One line of a loop's ``FailureStreak``, if any.
  private static func log(_ line: FailureStreak.Line?, _ loop: String, error: (any Error)? = nil, logger: Logger) {
    let reason = error.map { ($0 as? DeckhandError)?.message ?? "\($0)" } ?? ""
    switch line {
    case .started: logger.error("\(loop) failed: \(reason)")
    case .continuing(let count): logger.error("\(loop) still failing (\(count) times in a row): \(reason)")
    case .ended(let count): logger.notice("\(loop) works again after \(count) failures")
    case nil: break
    }
  }

  /// Where agents reach a server listening on `listen` (port `port`):
  /// 127.0.0.1 for a wildcard address.
  static func advertised(_ listen: ServerEndpoint, port: Int) -> ServerEndpoint {
    ServerEndpoint(host: ["0.0.0.0", "::", ""].contains(listen.host) ? "127.0.0.1" : listen.host, port: port)
  }

  /// `STATE/serving.json`: written once the server serves, removed when it
  /// stops; the machine-readable signal that it is ready.
  package static func servingFile(_ stateDirectory: String) -> String { "\(stateDirectory)/serving.json" }

  /// What `serving.json` holds.
  package struct Serving: Codable, Sendable, Hashable {
    /// HOST:PORT that agents and the CLI use.
    package var address: String
    /// The serving process.
    package var pid: Int32
    /// `https://HOST:PORT/` of the web UI, when it is served.
    package var web: String?
  }

  private static func announce(_ running: Running, in state: String) throws {
    let serving = Serving(
      address: running.endpoint.description, pid: getpid(),
      web: running.httpPort.map { "https://\(running.endpoint.host):\($0)/" })
    let path = servingFile(state)
    guard
      FileManager.default.createFile(
        atPath: path, contents: try JSONEncoder().encode(serving), attributes: [.posixPermissions: 0o644])
    else {
      throw DeckhandError(
        .configurationInvalid, "cannot write \(path): is the state directory \(state) writable by this user?")
    }
  }

  /// The endpoint to advertise and the first start's tokens (made and
  /// written on a first start, read back otherwise).
  private static func provision(
    plane: ControlPlane, store: any ServerStore, jobs: JobQueue, configuration: Configuration, port: Int,
    metricsPort: Int?
  ) async throws -> Running {
    let state = configuration.stateDirectory
    let endpoint = configuration.advertise ?? advertised(configuration.listen, port: port)
    var workerToken = ""
    var operatorToken = ""
    // The first start of the first replica makes the first tokens: once,
    // even when replicas start together on an empty database.
    let claim = ControlPlane.randomText()
    if try await store.tokens().isEmpty, try await store.claimSecret("bootstrap", value: claim) == claim {
      (_, workerToken) = try await plane.createToken(role: .worker, ttl: nil, description: "first worker join token")
      (_, operatorToken) = try await plane.createToken(role: .operator, ttl: nil, description: "first operator token")
      try writeSecret(workerToken, to: "\(state)/worker-token")
      try writeSecret(operatorToken, to: "\(state)/operator-token")
    } else {
      workerToken = (try? String(contentsOfFile: "\(state)/worker-token", encoding: .utf8)) ?? ""
      operatorToken = (try? String(contentsOfFile: "\(state)/operator-token", encoding: .utf8)) ?? ""
    }
    if let path = configuration.clientSettingsPath, !operatorToken.isEmpty {
      try ClientSettings(server: endpoint.description, token: operatorToken).write(to: path)
    }
    return Running(
      plane: plane, jobs: jobs, endpoint: endpoint, workerToken: workerToken, operatorToken: operatorToken,
      metricsPort: metricsPort)
  }

  private static func writeSecret(_ text: String, to path: String) throws {
    guard
      FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
    else {
      throw DeckhandError(
        .configurationInvalid,
        "cannot write \(path): \(String(cString: strerror(errno))); check that the state directory is writable by the server's user"
      )
    }
  }
}
