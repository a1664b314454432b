internal import ArgumentParser
internal import DeckhandAgent
internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandRuntime
internal import DeckhandServer
internal import DeckhandTelemetry
internal import Foundation
internal import Logging
internal import ServiceLifecycle
internal import UnixSignals

/// `deckhand dev`: the whole system in one process.
struct DevCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "dev",
    abstract: "Run a server and an agent in one process, with the example plugin deployed to the local node.",
    discussion: """
      Uses a throw-away state directory unless --state-dir is given. The CLI on this machine finds the \
      server (deckhand nodes ls, deckhand tasks ls, ...). Ctrl-C stops everything.
      """)

  @OptionGroup var logging: LogOptions
  @OptionGroup var tracing: TracingOptions

  @Option(help: "State directory (kept). Default: a new folder under /tmp, removed on exit.")
  var stateDir: String?
  @Option(help: "Address to listen on; if the port is taken, another one is picked.")
  var listen = "127.0.0.1:\(ServerEndpoint.defaultPort)"

  func run() async throws {
    let logger = try logging.logger("deckhand.dev", defaultLevel: .warning)
    let temporary = stateDir == nil
    let state =
      stateDir.map(HostOptions.absolute)
      ?? FileManager.default.temporaryDirectory.path + "/deckhand-dev-\(UUID().uuidString.prefix(8).lowercased())"
    do {
      let tracesEndpoint = try tracing.endpoint()
      let service = DevService(
        stateDirectory: state, listen: try ServerEndpoint(parsing: listen), tracesEndpoint: tracesEndpoint,
        logger: logger)
      // The exporter first, so that it is stopped last (see ServerCommand).
      var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
      if let tracesEndpoint {
        services.append(
          .init(
            service: try TraceExport.bootstrap(serviceName: "deckhand-dev", endpoint: tracesEndpoint, logger: logger)))
      }
      services.append(.init(service: service))
      let group = ServiceGroup(
        configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
      try await group.run()
    } catch let error as DeckhandError {
      FileHandle.standardError.write(Data("deckhand dev: \(error.message)\n".utf8))
      if temporary { try? FileManager.default.removeItem(atPath: state) }
      throw ExitCode(1)
    }
    if temporary { try? FileManager.default.removeItem(atPath: state) }
  }
}

/// The server, then an agent joined to it, then the example plugin
/// deployed; stopped in the reverse order.
struct DevService: Service {
  let stateDirectory: String
  let listen: ServerEndpoint
  /// Where the server, the agent and its plugins send spans; nil: off.
  var tracesEndpoint: String?
  let logger: Logger

  func say(_ line: String) { FileHandle.standardOutput.write(Data("\(line)\n".utf8)) }

  func run() async throws {
    // The root of both state directories and the runtime one: private too.
    try StateDirectory.secure(stateDirectory)
    var serverConfiguration = ControlPlaneServer.Configuration(
      listen: listen, stateDirectory: "\(stateDirectory)/server")
    // The default port may be taken (another deckhand dev): any free one.
    if !Self.portIsFree(listen) { serverConfiguration.listen.port = 0 }
    // Metrics on, on loopback: the usual ports, or any free ones.
    serverConfiguration.metricsListen = Self.loopback(ServeCommand.defaultMetricsPort)
    serverConfiguration.tracesEndpoint = tracesEndpoint
    // The web UI on loopback: the usual port, or any free one.
    serverConfiguration.httpListen = Self.loopback(ServeCommand.defaultHTTPPort)
    try await ControlPlaneServer(configuration: serverConfiguration, logger: logger).run { running in
      var agentConfiguration = AgentConfiguration(
        stateDirectory: "\(stateDirectory)/agent", runtimeDirectory: "\(stateDirectory)/run",
        socketPath: "\(stateDirectory)/run/commands.sock", nodeName: "dev")
      agentConfiguration.labels = ["env": "dev"]
      agentConfiguration.socketMode = 0o600
      agentConfiguration.stopPluginsOnExit = true
      agentConfiguration.server = running.endpoint.description
      agentConfiguration.metricsListen = Self.loopback(AgentConfiguration.defaultMetricsPort)
      agentConfiguration.otlpEndpoint = tracesEndpoint
      // The dev node's labels come from its join token, as in a fleet.
      let (_, devToken) = try await running.plane.createToken(
        role: .worker, ttl: .seconds(300), description: "deckhand dev's agent", labels: ["env": "dev"])
      agentConfiguration.joinToken = devToken
      let agent = try Agent(configuration: agentConfiguration, logger: logger)
      try await agent.run { _ in
        say("deckhand dev: server listening on \(running.endpoint) (TLS; state in \(stateDirectory))")
        if let port = running.httpPort {
          say("  web UI: https://127.0.0.1:\(port)/ (the server's own certificate: your browser will ask to trust it)")
          say(
            "  sign in at https://127.0.0.1:\(port)/signin with the operator token in \(stateDirectory)/server/operator-token"
          )
        }
        if let port = running.metricsPort { say("  server metrics: http://127.0.0.1:\(port)/metrics") }
        if let port = await agent.metricsPort { say("  agent metrics: http://127.0.0.1:\(port)/metrics") }
        say("  operator token and address written to \(ClientSettings.defaultPath)")
        say("  worker join token: \(running.workerToken)")
        say("  agent \"dev\" joined (labels env=dev); command socket \(agentConfiguration.socketPath)")
        try await withThrowingDiscardingTaskGroup { group in
          do {
            let package = try Self.examplePackage(in: stateDirectory)
            let artifact = try await running.plane.addArtifact(file: package, platform: ArtifactPackage.platform)
            let deployment = try await running.plane.deploy(
              plugin: artifact.name, version: artifact.version, selector: [:], configJSON: "", maxFailures: 0)
            say("  deploying \(artifact.name)@\(artifact.version) to every node (deployment \(deployment.id))")
            group.addTask { await reportFirstOutcome(of: deployment.id, plugin: artifact.name, running.plane) }
          } catch {
            say("  could not deploy the example plugin: \(error)")
          }
          say("")
          say("Try, in another terminal:")
          say("  deckhand nodes ls")
          say("  deckhand tasks ls")
          say("  deckhand deployments ls")
          say("  deckhand cmd --socket \(agentConfiguration.socketPath) '{\"Command\": \"plugins.list\"}'")
          say("Ctrl-C stops the agent, its plugins and the server.")
          try? await gracefulShutdown()
          group.cancelAll()
        }
        say("deckhand dev: stopping")
      }
    }
  }

  /// Says once whether the example plugin came up on the node (or gives up
  /// after 30 s quietly).
  func reportFirstOutcome(of deployment: String, plugin: String, _ plane: ControlPlane) async {
    for _ in 0..<300 {
      try? await Task.sleep(for: .milliseconds(100))
      if Task.isCancelled { return }
      let tasks =
        (try? await plane.store.tasks(node: nil, deployment: deployment, activeOnly: true))
        ?? []
      if let task = tasks.first, task.state == .running {
        say("  \(plugin) is RUNNING on node dev")
        return
      }
      if let task = tasks.first, task.state == .failed {
        say("  \(plugin) FAILED on node dev: \(task.message)")
        return
      }
    }
  }

  /// 127.0.0.1 at `port` if it is free, else at any free port.
  static func loopback(_ port: Int) -> ServerEndpoint {
    let endpoint = ServerEndpoint(host: "127.0.0.1", port: port)
    return portIsFree(endpoint) ? endpoint : ServerEndpoint(host: "127.0.0.1", port: 0)
  }

  /// Whether nothing listens on `endpoint`'s port yet.
  static func portIsFree(_ endpoint: ServerEndpoint) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(endpoint.port).bigEndian)
    address.sin_addr.s_addr = inet_addr(endpoint.host)
    return withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
      }
    }
  }

  /// A package of the echo example beside this deckhand binary.
  static func examplePackage(in folder: String) throws -> String {
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    let echo = executable.deletingLastPathComponent().appendingPathComponent("deckhand-example-echo").path
    guard FileManager.default.isExecutableFile(atPath: echo) else {
      throw DeckhandError(
        .configurationInvalid, "the example plugin \(echo) is missing; build it with `swift build`")
    }
    let contents = "\(folder)/package/echo"
    try? FileManager.default.removeItem(atPath: contents)
    try FileManager.default.createDirectory(atPath: contents, withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: echo, toPath: "\(contents)/deckhand-example-echo")
    // A copy keeps the original's mode; the state directory's files are private.
    chmod("\(contents)/deckhand-example-echo", 0o700)
    let manifest = #"{"name": "echo", "version": "1.0.0", "entrypoint": "deckhand-example-echo"}"#
    try Data(manifest.utf8).write(to: URL(fileURLWithPath: "\(contents)/plugin.json"))
    let package = "\(folder)/package/echo-1.0.0.tar.gz"
    try ArtifactPackage.pack(contents, into: package)
    return package
  }
}
