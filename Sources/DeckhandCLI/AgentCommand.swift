internal import ArgumentParser
internal import DeckhandAgent
internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandTelemetry
internal import Foundation
internal import Logging
internal import ServiceLifecycle
internal import UnixSignals

/// `deckhand agent`: the node agent daemon.
struct AgentCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "agent",
    abstract: "Run the node agent: keep the installed plugins running and serve the command socket.",
    discussion: """
      Installed plugins are kept in STATE/agent.sqlite. When the agent stops (SIGTERM, SIGINT) or dies, \
      its plugins keep running and the next agent re-attaches to them; --stop-plugins-on-exit stops them \
      instead. Flags win over the --config file (TOML; keys are the flags' names with underscores).
      """
  )

  @OptionGroup var logging: LogOptions

  @Option(help: "State directory. Default: /var/lib/deckhand as root, $XDG_STATE_HOME/deckhand otherwise.")
  var stateDir: String?

  @Option(
    help: "Runtime directory for plugin sockets. Default: /run/deckhand as root, $XDG_RUNTIME_DIR/deckhand otherwise.")
  var runtimeDir: String?

  @Option(
    help:
      "Command socket. Default: /run/deckhand/commands.sock as root, $XDG_RUNTIME_DIR/deckhand/commands.sock otherwise."
  )
  var socket: String?

  @Option(help: "This node's name. Default: the host name.")
  var nodeName: String?

  @Option(name: .customLong("label"), help: "A node label, key=value; repeatable.")
  var labels: [String] = []

  @Option(help: "The command socket's mode, in octal.")
  var socketMode: String?

  @Option(help: "The group that owns the command socket.")
  var socketGroup: String?

  @Option(help: "How long a client has to send its request (e.g. 10s, 500ms).")
  var commandTimeout: String?

  @Option(help: "A TOML config file.")
  var config: String?

  @Flag(help: "Stop the plugins when the agent exits instead of leaving them running.")
  var stopPluginsOnExit = false

  @Option(
    help: "A folder of trusted public keys (*.pub, from `deckhand keys generate`); signed plugins must verify with one."
  )
  var trustedKeys: String?

  @Flag(help: "Refuse unsigned plugins (needs --trusted-keys).")
  var requireSigned = false

  @Option(
    help: """
      Join this control plane (HOST:PORT, or its replicas HOST:PORT,HOST:PORT,…) and run what it assigns; \
      when a replica stops answering, the agent moves to another (those given, and those the servers name).
      """)
  var server: String?

  @Option(
    help:
      "A worker join token (DHTKN-1-…), needed the first time with --server. Every local user can read a command line: prefer --join-token-file or DECKHAND_JOIN_TOKEN."
  )
  var joinToken: String?

  @Option(help: "Read the join token from this file (not readable by other users).")
  var joinTokenFile: String?

  @Option(help: "How many jobs of the server's queue to run at once (default 1).")
  var jobSlots: Int?

  @Option(
    help: """
      Serve Prometheus metrics at http://HOST:PORT/metrics (port \(AgentConfiguration.defaultMetricsPort) if none \
      is given; off by default). Plain HTTP: bind it to loopback or a scrape network.
      """)
  var metricsListen: String?

  @OptionGroup var tracing: TracingOptions

  @Option(help: "The largest plugin package to take from the server, in MiB (default 256).")
  var packageMaxMb: Int?

  @Option(help: "The most a plugin package may unpack to, in MiB (default 1024).")
  var packageMaxUnpackedMb: Int?

  @Option(help: "The most entries a plugin package may hold (default 10000).")
  var packageMaxFiles: Int?

  func resolvedConfiguration() throws -> AgentConfiguration {
    var configuration = AgentConfiguration.defaults()
    if let config { try configuration.apply(tomlFile: HostOptions.absolute(config)) }
    if let stateDir { configuration.stateDirectory = HostOptions.absolute(stateDir) }
    if let runtimeDir { configuration.runtimeDirectory = HostOptions.absolute(runtimeDir) }
    if let socket { configuration.socketPath = HostOptions.absolute(socket) }
    if let nodeName { configuration.nodeName = nodeName }
    configuration.labels.merge(try KeyValues.parse(labels, flag: "--label", emptyValues: false)) { $1 }
    if let socketMode {
      guard let mode = UInt32(socketMode, radix: 8), mode <= 0o777 else {
        throw ValidationError("--socket-mode \(socketMode): expected an octal mode such as 0660")
      }
      configuration.socketMode = mode
    }
    if let socketGroup { configuration.socketGroup = socketGroup }
    if let commandTimeout {
      guard let duration = DurationText.parse(commandTimeout), duration > .zero else {
        throw ValidationError("--command-timeout \(commandTimeout): expected a duration such as 10s or 500ms")
      }
      configuration.commandTimeout = duration
    }
    if stopPluginsOnExit { configuration.stopPluginsOnExit = true }
    if let trustedKeys { configuration.trustedKeysDirectory = HostOptions.absolute(trustedKeys) }
    if requireSigned { configuration.requireSigned = true }
    if let server { configuration.server = server }
    if let joinToken {
      configuration.joinToken = joinToken
    } else if let joinTokenFile {
      configuration.joinToken = try AgentConfiguration.readJoinToken(file: HostOptions.absolute(joinTokenFile))
    } else if let fromEnvironment = ProcessInfo.processInfo.environment["DECKHAND_JOIN_TOKEN"], !fromEnvironment.isEmpty
    {
      configuration.joinToken = fromEnvironment
    }
    if let metricsListen {
      configuration.metricsListen = try ServerEndpoint(
        parsing: metricsListen, defaultPort: AgentConfiguration.defaultMetricsPort)
    }
    if let jobSlots {
      guard jobSlots >= 1 else { throw ValidationError("--job-slots \(jobSlots): expected at least 1") }
      configuration.jobSlots = jobSlots
    }
    for (flag, value) in [
      ("--package-max-mb", packageMaxMb), ("--package-max-unpacked-mb", packageMaxUnpackedMb),
      ("--package-max-files", packageMaxFiles),
    ] {
      if let value, value < 1 { throw ValidationError("\(flag) \(value): expected at least 1") }
    }
    if let packageMaxMb { configuration.packageLimits.compressedBytes = Int64(packageMaxMb) << 20 }
    if let packageMaxUnpackedMb { configuration.packageLimits.stream.unpackedBytes = Int64(packageMaxUnpackedMb) << 20 }
    if let packageMaxFiles { configuration.packageLimits.stream.entries = packageMaxFiles }
    configuration.otlpEndpoint = try tracing.endpoint(fileValue: configuration.otlpEndpoint)
    return configuration
  }

  func run() async throws {
    let configuration: AgentConfiguration
    do {
      configuration = try resolvedConfiguration()
    } catch let error as DeckhandError {
      FileHandle.standardError.write(Data("deckhand: \(error.message)\n".utf8))
      throw ExitCode(2)
    }
    let logger = try logging.logger("deckhand.agent", defaultLevel: .info)
    do {
      let agent = try Agent(configuration: configuration, logger: logger)
      // The exporter first: a group stops its services in reverse, so it
      // sends the agent's last spans after the agent has stopped.
      var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
      if let endpoint = configuration.otlpEndpoint {
        services.append(
          .init(service: try TraceExport.bootstrap(serviceName: "deckhand-agent", endpoint: endpoint, logger: logger)))
      }
      services.append(.init(service: agent))
      let group = ServiceGroup(
        configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
      try await group.run()
    } catch let error as DeckhandError {
      FileHandle.standardError.write(Data("deckhand: \(error.message)\n".utf8))
      throw ExitCode(1)
    }
  }
}
