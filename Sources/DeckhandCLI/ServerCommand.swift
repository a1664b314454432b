internal import ArgumentParser
internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandServer
internal import Foundation
internal import Logging
internal import ServiceLifecycle
internal import UnixSignals

/// `deckhand server`: the control plane.
struct ServerCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "server",
    abstract: "Run the control plane: agents join it, operators deploy plugins through it.",
    discussion: """
      Serves the dispatcher (agents) and the operator's API on one TLS port. On first start it makes its \
      CA, a worker join token (STATE/worker-token) and an operator token (STATE/operator-token), and \
      writes the operator's token and address to ~/.config/deckhand/client.json for the CLI on this machine.
      """)

  @Option(help: "Address to listen on, HOST:PORT.") var listen = "0.0.0.0:\(ServerEndpoint.defaultPort)"
  @Option(
    help: "State directory. Default: /var/lib/deckhand-server as root, $XDG_STATE_HOME/deckhand-server otherwise.")
  var stateDir: String?
  @Option(help: "Heartbeat period agents are given (e.g. 5s); nodes are DOWN after 3 missed periods.")
  var heartbeatPeriod: String?
  @Option(help: "A job assigned but not acknowledged within this goes back to the queue.") var jobAckTimeout = "2m"
  @Option(help: "How often runners send heartbeats for a running job.") var jobHeartbeatInterval = "5s"
  @Option(help: "A running job with no heartbeat for this long ends in ERROR.") var jobHeartbeatTimeout = "2m"
  @Option(help: "Output stored per job (e.g. 64MiB); past it, output is cut and the cut is said in the output.")
  var jobOutputLimit = "64MiB"
  @Option(help: "Ended jobs and their output are deleted this long after they ended (e.g. 7d).")
  var jobRetention = "7d"
  @Option(help: "Open connections the server holds, all peers together.")
  var maxConnections = ConnectionLimits().maxConnections
  @Option(help: "Connections that have not yet made a call with a good token, all peers together.")
  var maxUnauthenticatedConnections = ConnectionLimits().maxUnauthenticated
  @Option(help: "Such connections from one IP address.")
  var maxUnauthenticatedPerAddress = ConnectionLimits().maxUnauthenticatedPerAddress
  @Option(help: "A connection that has made no call with a good token within this is closed.")
  var authenticationDeadline = "10s"

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

  func run() async throws {
    var logger = Logger(label: "deckhand.server")
    logger.logLevel = .info
    do {
      var configuration = ControlPlaneServer.Configuration(
        listen: try ServerEndpoint(parsing: listen),
        stateDirectory: stateDir.map(HostOptions.absolute) ?? Self.defaultStateDirectory())
      if let heartbeatPeriod {
        guard let period = DurationText.parse(heartbeatPeriod), period > .zero else {
          throw DeckhandError(.configurationInvalid, "--heartbeat-period \(heartbeatPeriod): expected a duration")
        }
        configuration.timing.heartbeatPeriod = period
      }
      configuration.jobTiming.ackTimeout = try Self.duration(jobAckTimeout, "job-ack-timeout")
      configuration.jobTiming.heartbeatInterval = try Self.duration(jobHeartbeatInterval, "job-heartbeat-interval")
      configuration.jobTiming.heartbeatTimeout = try Self.duration(jobHeartbeatTimeout, "job-heartbeat-timeout")
      configuration.jobTiming.retention = try Self.duration(jobRetention, "job-retention")
      guard let limit = ByteText.parse(jobOutputLimit), limit > 0 else {
        throw DeckhandError(
          .configurationInvalid, "--job-output-limit \(jobOutputLimit): expected a size such as 64MiB or 1GiB")
      }
      configuration.jobTiming.outputLimit = limit
      for (value, flag) in [
        (maxConnections, "max-connections"), (maxUnauthenticatedConnections, "max-unauthenticated-connections"),
        (maxUnauthenticatedPerAddress, "max-unauthenticated-per-address"),
      ] where value < 1 {
        throw DeckhandError(.configurationInvalid, "--\(flag) \(value): expected a number of connections, at least 1")
      }
      configuration.connectionLimits.maxConnections = maxConnections
      configuration.connectionLimits.maxUnauthenticated = maxUnauthenticatedConnections
      configuration.connectionLimits.maxUnauthenticatedPerAddress = maxUnauthenticatedPerAddress
      configuration.connectionLimits.authenticationDeadline = try Self.duration(
        authenticationDeadline, "authentication-deadline")
      let server = ControlPlaneServer(configuration: configuration, logger: logger)
      let group = ServiceGroup(
        configuration: .init(
          services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
      try await group.run()
    } catch let error as DeckhandError {
      FileHandle.standardError.write(Data("deckhand: \(error.message)\n".utf8))
      throw ExitCode(1)
    }
  }
}
