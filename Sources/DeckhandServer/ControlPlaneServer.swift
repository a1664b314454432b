package import DeckhandClient
package import DeckhandCore
internal import DeckhandRuntime
internal import DeckhandProtocol
package import Foundation
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
package import Logging
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
    package var timing = ControlPlaneTiming()
    package var jobTiming = JobQueue.Timing()
    /// Where the CLI settings go; nil: don't write them.
    package var clientSettingsPath: String? = ClientSettings.defaultPath
    package init(listen: ServerEndpoint, stateDirectory: String) {
      self.listen = listen
      self.stateDirectory = stateDirectory
    }
  }

  /// A started server.
  package struct Running: Sendable {
    package let plane: ControlPlane
    package let jobs: JobQueue
    let relay: ExecRelay
    let serving: Task<Void, any Error>
    /// The address agents and the CLI use.
    package let endpoint: ServerEndpoint
    /// Tokens made on this start (first start only), else nil.
    package let workerToken: String
    package let operatorToken: String
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let tasks: Task<Void, Never>
  }

  package let configuration: Configuration
  let logger: Logger

  package init(configuration: Configuration, logger: Logger) {
    self.configuration = configuration
    self.logger = logger
  }

  package func run() async throws {
    let running = try await start()
    logger.info(
      "server serving", metadata: ["address": "\(running.endpoint)", "state_dir": "\(configuration.stateDirectory)"])
    try? await gracefulShutdown()
    await stop(running)
  }

  /// Opens the state, serves, and starts the heartbeat sweeper and the
  /// reconcile loop.
  package func start() async throws -> Running {
    let state = configuration.stateDirectory
    let store = try SQLiteServerStore(stateDirectory: state)
    // After a restart nobody is known to be up: nodes become READY as they
    // come back.
    try store.setAllNodes(status: .unknown)
    var hosts = ["localhost", "127.0.0.1", ProcessInfo.processInfo.hostName]
    if !["0.0.0.0", "::", ""].contains(configuration.listen.host) { hosts.append(configuration.listen.host) }
    let authority = try CertificateAuthority.loadOrCreate(directory: "\(state)/tls", hosts: hosts)

    let transport = HTTP2ServerTransport.Posix(
      address: .ipv4(host: configuration.listen.host, port: configuration.listen.port),
      transportSecurity: .tls(
        certificateChain: [.bytes(Array(authority.serverCertificatePEM.utf8), format: .pem)],
        privateKey: .bytes(Array(authority.serverKeyPEM.utf8), format: .pem)),
      config: .defaults { config in
        config.rpc.maxRequestPayloadSize = 8 << 20
        // Thousands of agents hold streams open.
        config.http2.maxConcurrentStreams = 4096
      })
    let provisional = try ControlPlane(
      store: store, authority: authority, timing: configuration.timing, artifactsDirectory: "\(state)/artifacts",
      advertisedAddresses: [], logger: logger)
    let jobs = JobQueue(store: store, timing: configuration.jobTiming)
    let relay = ExecRelay()
    let server = GRPCServer(
      transport: transport,
      services: [
        DispatcherService(plane: provisional), ControlService(plane: provisional),
        JobsService(plane: provisional, queue: jobs, relay: relay),
      ])
    let serving = Task { try await server.serve() }
    guard let address = try? await transport.listeningAddress, let port = address.ipv4?.port ?? address.ipv6?.port
    else {
      serving.cancel()
      let failure = await serving.result
      throw DeckhandError(
        .configurationInvalid, "cannot listen on \(configuration.listen): \(failure)")
    }
    let advertisedHost =
      ["0.0.0.0", "::"].contains(configuration.listen.host) ? "127.0.0.1" : configuration.listen.host
    let endpoint = ServerEndpoint(host: advertisedHost, port: port)

    var workerToken = ""
    var operatorToken = ""
    if try store.tokens().isEmpty {
      (_, workerToken) = try provisional.createToken(role: .worker, ttl: nil, description: "first worker join token")
      (_, operatorToken) = try provisional.createToken(role: .operator, ttl: nil, description: "first operator token")
      try Self.writeSecret(workerToken, to: "\(state)/worker-token")
      try Self.writeSecret(operatorToken, to: "\(state)/operator-token")
    } else {
      workerToken = (try? String(contentsOfFile: "\(state)/worker-token", encoding: .utf8)) ?? ""
      operatorToken = (try? String(contentsOfFile: "\(state)/operator-token", encoding: .utf8)) ?? ""
    }
    if let path = configuration.clientSettingsPath, !operatorToken.isEmpty {
      try ClientSettings(server: endpoint.description, token: operatorToken).write(to: path)
    }

    let plane = provisional
    let period = configuration.timing.heartbeatPeriod
    let logger = self.logger
    let tasks = Task {
      await withTaskGroup(of: Void.self) { group in
        group.addTask { await plane.runReconcileLoop() }
        group.addTask {
          let tick = min(period / 4, .seconds(1))
          while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            do { try await BlockingWork.run { try plane.sweep() } } catch {
              logger.error("heartbeat sweep failed: \(error)")
            }
          }
        }
        group.addTask {
          while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(250))
            do { try await BlockingWork.run { try jobs.sweep() } } catch { logger.error("job sweep failed: \(error)") }
          }
        }
        group.addTask {
          do { try await serving.value } catch { logger.error("server stopped: \(error)") }
        }
        await group.next()
        group.cancelAll()
      }
    }
    plane.requestReconcile()
    return Running(
      plane: plane, jobs: jobs, relay: relay, serving: serving, endpoint: endpoint, workerToken: workerToken,
      operatorToken: operatorToken,
      server: server,
      tasks: tasks)
  }

  /// Ends sessions and streams, stops serving: gracefully, then (after
  /// 5 s) by cancelling what still runs.
  package func stop(_ running: Running) async {
    running.plane.endSessions()
    running.jobs.close()
    running.relay.close()
    running.server.beginGracefulShutdown()
    let serving = running.serving
    let deadline = Task {
      try await Task.sleep(for: .seconds(5))
      serving.cancel()
    }
    _ = await serving.result
    deadline.cancel()
    running.tasks.cancel()
    await running.tasks.value
  }

  private static func writeSecret(_ text: String, to path: String) throws {
    guard
      FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
    else {
      throw DeckhandError(.configurationInvalid, "cannot write \(path)")
    }
  }
}
