internal import ArgumentParser
internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandServer
internal import DeckhandTelemetry
internal import Foundation
internal import Logging
internal import ServiceLifecycle
internal import UnixSignals

/// `deckhand server`: the control plane (`serve`, the default), and its
/// offline tools.
struct ServerCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "server",
    abstract: "Run the control plane (deckhand server [serve] ...), or restore its state offline.",
    subcommands: [ServeCommand.self, ServerRestoreCommand.self], defaultSubcommand: ServeCommand.self)
}

/// `deckhand server [serve]`: runs the control plane.
struct ServeCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "serve",
    abstract: "Run the control plane: agents join it, operators deploy plugins through it.",
    discussion: """
      Serves the dispatcher (agents) and the operator's API on one TLS port. On first start it makes its \
      CA, a worker join token (STATE/worker-token) and an operator token (STATE/operator-token), and \
      writes the operator's token and address to ~/.config/deckhand/client.json for the CLI on this machine.
      """)

  @OptionGroup var logging: LogOptions

  @Option(help: "Address to listen on, HOST:PORT (default 0.0.0.0:\(ServerEndpoint.defaultPort)).") var listen: String?
  @Option(
    help: "State directory. Default: /var/lib/deckhand-server as root, $XDG_STATE_HOME/deckhand-server otherwise.")
  var stateDir: String?
  @Option(
    help: """
      Keep the state in PostgreSQL instead of SQLite in the state directory: \
      postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require&sslrootcert=CA.pem] \
      (also DECKHAND_DATABASE_URL). Replicas on one database share the fleet.
      """)
  var databaseUrl: String?
  @Option(
    help: """
      The address agents reach this replica at, HOST:PORT (default: the listening address; 127.0.0.1 for \
      0.0.0.0). Agents are told every live replica's.
      """)
  var advertise: String?
  @Option(help: "A TOML config file; keys are the flags' names with underscores. Flags win.") var config: String?
  @Option(
    help: """
      Serve Prometheus metrics at http://HOST:PORT/metrics (port \(ServeCommand.defaultMetricsPort) if none is \
      given; off by default). Plain HTTP: bind it to loopback or a scrape network.
      """)
  var metricsListen: String?
  @OptionGroup var tracing: TracingOptions
  @Option(
    help: """
      Serve the web UI over HTTPS (the server's own certificate) at HOST:PORT; default: the gRPC host, port \
      \(ServeCommand.defaultHTTPPort); off: no web UI.
      """)
  var httpListen: String?
  @Option(help: "Heartbeat period agents are given (e.g. 5s); nodes are DOWN after 3 missed periods.")
  var heartbeatPeriod: String?
  @Option(
    help:
      "Heartbeats this server takes a second at most (default \(Int(ControlPlaneTiming().maxHeartbeatsPerSecond)); 0: no bound): with more nodes, their period grows."
  )
  var maxHeartbeatsPerSecond: Int?
  @Option(help: "A job assigned but not acknowledged within this goes back to the queue (default 2m).")
  var jobAckTimeout: String?
  @Option(help: "How often runners send heartbeats for a running job (default 5s).") var jobHeartbeatInterval: String?
  @Option(help: "A running job with no heartbeat for this long ends in ERROR (default 2m).")
  var jobHeartbeatTimeout: String?
  @Option(help: "Output stored per job (default 64MiB); past it, output is cut and the cut is said in the output.")
  var jobOutputLimit: String?
  @Option(help: "Ended jobs and their output are deleted this long after they ended (default 7d).")
  var jobRetention: String?
  @Option(help: "Fleet events (deckhand events) are kept this long (default 7d).")
  var eventRetention: String?
  @Option(help: "Open connections the server holds, all peers together (default \(ConnectionLimits().maxConnections)).")
  var maxConnections: Int?
  @Option(
    help:
      "Connections that have not yet made a call with a good token, all peers together (default \(ConnectionLimits().maxUnauthenticated))."
  )
  var maxUnauthenticatedConnections: Int?
  @Option(help: "Such connections from one IP address (default \(ConnectionLimits().maxUnauthenticatedPerAddress)).")
  var maxUnauthenticatedPerAddress: Int?
  @Option(help: "A connection that has made no call with a good token within this is closed (default 10s).")
  var authenticationDeadline: String?

  /// Where `--metrics-listen` serves without a port.
  static let defaultMetricsPort = 9380
  /// Where the web UI is served without a port (`--http-listen`).
  static let defaultHTTPPort = 7381

  static func duration(_ text: String, _ flag: String) throws -> Duration {
    guard let duration = DurationText.parse(text), duration > .zero else {
      throw DeckhandError(.configurationInvalid, "--\(flag) \(text): expected a duration such as 5s or 2m")
    }
    return duration
  }

  static func defaultStateDirectory() -> String {
    let environment = ProcessInfo.processInfo.environment
    if getuid() == 0 { return "/var/lib/deckhand-server" }
    let base =
      environment["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
      ?? "\(environment["HOME"] ?? NSHomeDirectory())/.local/state"
    return "\(base)/deckhand-server"
  }

  /// The configuration from the flags, then `DECKHAND_DATABASE_URL`, then
  /// the `--config` file, then the defaults.
  func resolvedConfiguration(environment: [String: String] = ProcessInfo.processInfo.environment) throws
    -> ControlPlaneServer.Configuration
  {
    let file = try config.map { try ServerConfigFile(path: HostOptions.absolute($0)) } ?? ServerConfigFile()
    func setting(_ flag: String?, _ key: String) -> String? { flag ?? file[key] }
    func number(_ flag: Int?, _ key: String, default value: Int, minimum: Int = 1) throws -> Int {
      guard let text = setting(flag.map(String.init), key) else { return value }
      guard let number = Int(text), number >= minimum else {
        throw DeckhandError(
          .configurationInvalid,
          "--\(key.replacingOccurrences(of: "_", with: "-")) \(text): expected a whole number, at least \(minimum)")
      }
      return number
    }
    var configuration = ControlPlaneServer.Configuration(
      listen: try ServerEndpoint(parsing: setting(listen, "listen") ?? "0.0.0.0:\(ServerEndpoint.defaultPort)"),
      stateDirectory: setting(stateDir, "state_dir").map(HostOptions.absolute) ?? Self.defaultStateDirectory())
    let url =
      databaseUrl ?? environment["DECKHAND_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? file["database_url"]
    configuration.databaseURL = try url.map { try DatabaseURL(parsing: $0) }
    configuration.advertise = try setting(advertise, "advertise").map { try ServerEndpoint(parsing: $0) }
    configuration.metricsListen = try setting(metricsListen, "metrics_listen").map {
      try ServerEndpoint(parsing: $0, defaultPort: Self.defaultMetricsPort)
    }
    if let heartbeatPeriod = setting(heartbeatPeriod, "heartbeat_period") {
      configuration.timing.heartbeatPeriod = try Self.duration(heartbeatPeriod, "heartbeat-period")
    }
    // 0: no bound.
    configuration.timing.maxHeartbeatsPerSecond = Double(
      try number(
        maxHeartbeatsPerSecond, "max_heartbeats_per_second",
        default: Int(configuration.timing.maxHeartbeatsPerSecond), minimum: 0))
    configuration.jobTiming.ackTimeout = try Self.duration(
      setting(jobAckTimeout, "job_ack_timeout") ?? "2m", "job-ack-timeout")
    configuration.jobTiming.heartbeatInterval = try Self.duration(
      setting(jobHeartbeatInterval, "job_heartbeat_interval") ?? "5s", "job-heartbeat-interval")
    configuration.jobTiming.heartbeatTimeout = try Self.duration(
      setting(jobHeartbeatTimeout, "job_heartbeat_timeout") ?? "2m", "job-heartbeat-timeout")
    configuration.jobTiming.retention = try Self.duration(
      setting(jobRetention, "job_retention") ?? "7d", "job-retention")
    configuration.eventRetention = try Self.duration(
      setting(eventRetention, "event_retention") ?? "7d", "event-retention")
    let outputLimit = setting(jobOutputLimit, "job_output_limit") ?? "64MiB"
    guard let limit = ByteText.parse(outputLimit), limit > 0 else {
      throw DeckhandError(
        .configurationInvalid, "--job-output-limit \(outputLimit): expected a size such as 64MiB or 1GiB")
    }
    configuration.jobTiming.outputLimit = limit
    let defaults = ConnectionLimits()
    configuration.connectionLimits.maxConnections = try number(
      maxConnections, "max_connections", default: defaults.maxConnections)
    configuration.connectionLimits.maxUnauthenticated = try number(
      maxUnauthenticatedConnections, "max_unauthenticated_connections", default: defaults.maxUnauthenticated)
    configuration.connectionLimits.maxUnauthenticatedPerAddress = try number(
      maxUnauthenticatedPerAddress, "max_unauthenticated_per_address",
      default: defaults.maxUnauthenticatedPerAddress)
    configuration.connectionLimits.authenticationDeadline = try Self.duration(
      setting(authenticationDeadline, "authentication_deadline") ?? "10s", "authentication-deadline")
    configuration.tracesEndpoint = try tracing.endpoint(fileValue: file["otlp_endpoint"])
    let http = setting(httpListen, "http_listen") ?? "\(configuration.listen.host):\(Self.defaultHTTPPort)"
    configuration.httpListen =
      http == "off" ? nil : try ServerEndpoint(parsing: http, defaultPort: Self.defaultHTTPPort)
    return configuration
  }

  func run() async throws {
    let logger = try logging.logger("deckhand.server", defaultLevel: .info)
    do {
      let configuration = try resolvedConfiguration()
      let server = ControlPlaneServer(configuration: configuration, logger: logger)
      // The exporter first: a group stops its services in reverse, so it
      // sends the server's last spans after the server has stopped.
      var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
      if let endpoint = configuration.tracesEndpoint {
        services.append(
          .init(service: try TraceExport.bootstrap(serviceName: "deckhand-server", endpoint: endpoint, logger: logger)))
      }
      services.append(.init(service: server))
      let group = ServiceGroup(
        configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
      try await group.run()
    } catch let error as DeckhandError {
      FileHandle.standardError.write(Data("deckhand: \(error.message)\n".utf8))
      throw ExitCode(1)
    }
  }
}
