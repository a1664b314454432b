package import DeckhandClient
package import DeckhandCore
internal import Foundation
internal import TOMLKit

/// Everything `deckhand agent` can be told, from its flags or a TOML file
/// (flags win). The file's keys are the flags' names with underscores:
///
/// ```toml
/// state_dir = "/var/lib/deckhand"
/// runtime_dir = "/run/deckhand"
/// socket = "/run/deckhand/commands.sock"
/// node_name = "web-1"
/// labels = { zone = "eu-1", role = "web" }
/// socket_mode = "0660"          # or 0o660
/// socket_group = "deckhand"
/// command_timeout = "10s"       # or a number of seconds
/// stop_plugins_on_exit = false
/// trusted_keys = "/etc/deckhand/trusted"
/// require_signed = true
/// server = "deckhand.example:7380"
/// join_token = "DHTKN-1-…"
/// heartbeat_period = "5s"       # the server tells the agent; for tests
/// job_slots = 1                 # jobs of the server's queue run at once
/// metrics_listen = "127.0.0.1:9381"  # Prometheus /metrics; off if absent
/// otlp_endpoint = "http://127.0.0.1:4317"  # OTLP/gRPC traces; off if absent
/// ```
package struct AgentConfiguration: Hashable, Sendable {
  /// The database, plugin state and logs.
  package var stateDirectory: String
  /// Plugin sockets.
  package var runtimeDirectory: String
  /// The command socket.
  package var socketPath: String
  /// This node's name (the host name by default).
  package var nodeName: String
  /// This node's labels.
  package var labels: [String: String] = [:]
  /// The command socket's file mode.
  package var socketMode: UInt32 = 0o660
  /// The command socket's group, if not the agent's own.
  package var socketGroup: String?
  /// How long a client has to send its request.
  package var commandTimeout: Duration = .seconds(10)
  /// Stop plugins when the agent exits, instead of leaving them running
  /// for the next agent to re-attach.
  package var stopPluginsOnExit = false
  /// A folder of trusted package keys (`*.pub`): signed plugins must verify
  /// with one of them.
  package var trustedKeysDirectory: String?
  /// Refuse unsigned plugins.
  package var requireSigned = false
  /// The control plane's address (`HOST:PORT`); nil: the agent runs alone.
  package var server: String?
  /// A worker join token, needed on the first start with ``server``.
  package var joinToken: String?
  /// How many jobs of the server's queue this agent runs at once (each
  /// on a runner stream of its own).
  package var jobSlots = 1
  /// Where Prometheus scrapes `/metrics` (port 0: any free port); nil: no
  /// metrics are kept.
  package var metricsListen: ServerEndpoint?
  /// Where this agent and its plugins send their spans (OTLP over gRPC);
  /// nil: no traces. The agent runs its jobs in spans that continue the
  /// trace that queued them, and passes the trace on to plugin calls.
  package var otlpEndpoint: String?
  /// Where `metrics_listen` serves without a port.
  package static let defaultMetricsPort = 9381
  /// Bounds on a plugin package from the server: its size, what it unpacks
  /// to and its number of entries (256 MiB, 1 GiB and 10,000 by default).
  package var packageLimits = PackageArchive.Limits()

  /// The defaults for this process (see ``DeckhandCore/AgentLocations``).
  /// The join token in `file`, trimmed. The file must be a regular file
  /// that other users cannot read (as ssh does for keys): a token in a
  /// world-readable file is no better than one on the command line.
  package static func readJoinToken(file: String) throws -> String {
    var info = stat()
    guard stat(file, &info) == 0 else {
      throw DeckhandError(
        .configurationInvalid, "cannot read the join token file \(file): \(String(cString: strerror(errno)))")
    }
    guard (info.st_mode & S_IFMT) == S_IFREG else {
      throw DeckhandError(.configurationInvalid, "the join token file \(file) is not a regular file")
    }
    guard info.st_mode & 0o007 == 0 else {
      throw DeckhandError(
        .configurationInvalid,
        "the join token file \(file) is readable by other users (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it"
      )
    }
    guard let data = FileManager.default.contents(atPath: file), data.count <= 4096,
      let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty
    else {
      throw DeckhandError(
        .configurationInvalid, "the join token file \(file) holds no token (expected one line DHTKN-1-…)")
    }
    return text
  }

  package static func defaults(environment: [String: String]? = nil) -> AgentConfiguration {
    let environment = environment ?? ProcessInfo.processInfo.environment
    let locations = AgentLocations.defaults(uid: getuid(), environment: environment)
    return AgentConfiguration(
      stateDirectory: locations.stateDirectory, runtimeDirectory: locations.runtimeDirectory,
      socketPath: locations.commandSocket, nodeName: ProcessInfo.processInfo.hostName)
  }

  package init(stateDirectory: String, runtimeDirectory: String, socketPath: String, nodeName: String) {
    self.stateDirectory = stateDirectory
    self.runtimeDirectory = runtimeDirectory
    self.socketPath = socketPath
    self.nodeName = nodeName
  }

  /// Applies the settings of the TOML file at `path`.
  ///
  /// - Throws: ``DeckhandCore/DeckhandError`` naming the file and the key
  ///   that is unknown or has the wrong type.
  package mutating func apply(tomlFile path: String) throws {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw DeckhandError(.configurationInvalid, "\(path): config file cannot be read")
    }
    let table: TOMLTable
    do {
      table = try TOMLTable(string: String(decoding: data, as: UTF8.self))
    } catch {
      throw DeckhandError(.configurationInvalid, "\(path): not valid TOML: \(error)", cause: error)
    }
    func fail(_ key: String, _ expected: String) -> DeckhandError {
      DeckhandError(.configurationInvalid, "\(path): \(key) must be \(expected)")
    }
    for (key, value) in table {
      switch key {
      case "state_dir":
        guard let text = value.string else { throw fail(key, "a string") }
        stateDirectory = text
      case "runtime_dir":
        guard let text = value.string else { throw fail(key, "a string") }
        runtimeDirectory = text
      case "socket":
        guard let text = value.string else { throw fail(key, "a string") }
        socketPath = text
      case "node_name":
        guard let text = value.string else { throw fail(key, "a string") }
        nodeName = text
      case "labels":
        guard let labelTable = value.table else { throw fail(key, "a table of strings") }
        for (name, label) in labelTable {
          guard let text = label.string else { throw fail("labels.\(name)", "a string") }
          labels[name] = text
        }
      case "socket_mode":
        if let number = value.int {
          socketMode = UInt32(number)
        } else if let text = value.string, let mode = UInt32(text, radix: 8) {
          socketMode = mode
        } else {
          throw fail(key, "an octal mode such as \"0660\" or 0o660")
        }
      case "socket_group":
        guard let text = value.string else { throw fail(key, "a string") }
        socketGroup = text
      case "command_timeout":
        if let number = value.int {
          commandTimeout = .seconds(number)
        } else if let number = value.double {
          commandTimeout = .nanoseconds(Int64(number * 1e9))
        } else if let text = value.string, let duration = DurationText.parse(text) {
          commandTimeout = duration
        } else {
          throw fail(key, "a duration such as \"10s\" or a number of seconds")
        }
      case "stop_plugins_on_exit":
        guard let flag = value.bool else { throw fail(key, "true or false") }
        stopPluginsOnExit = flag
      case "trusted_keys":
        guard let text = value.string else { throw fail(key, "a string") }
        trustedKeysDirectory = text
      case "require_signed":
        guard let flag = value.bool else { throw fail(key, "true or false") }
        requireSigned = flag
      case "server":
        guard let text = value.string else { throw fail(key, "a string") }
        server = text
      case "metrics_listen":
        guard let text = value.string else { throw fail(key, "HOST:PORT") }
        metricsListen = try ServerEndpoint(parsing: text, defaultPort: Self.defaultMetricsPort)
      case "otlp_endpoint":
        guard let text = value.string else { throw fail(key, "a URL such as http://127.0.0.1:4317") }
        otlpEndpoint = text
      case "job_slots":
        guard let number = value.int, number >= 1 else { throw fail(key, "a whole number of at least 1") }
        jobSlots = number
      case "package_max_mb":
        guard let number = value.int, number >= 1 else { throw fail(key, "a whole number of MiB, at least 1") }
        packageLimits.compressedBytes = Int64(number) << 20
      case "package_max_unpacked_mb":
        guard let number = value.int, number >= 1 else { throw fail(key, "a whole number of MiB, at least 1") }
        packageLimits.stream.unpackedBytes = Int64(number) << 20
      case "package_max_files":
        guard let number = value.int, number >= 1 else { throw fail(key, "a whole number, at least 1") }
        packageLimits.stream.entries = number
      case "join_token":
        guard let text = value.string else { throw fail(key, "a string") }
        joinToken = text
      case "join_token_file":
        guard let text = value.string else { throw fail(key, "a string") }
        joinToken = try Self.readJoinToken(file: text)
      default:
        throw DeckhandError(
          .configurationInvalid,
          "\(path): unknown key \(key); known: state_dir, runtime_dir, socket, node_name, labels, socket_mode, socket_group, command_timeout, stop_plugins_on_exit, trusted_keys, require_signed, server, job_slots, metrics_listen, otlp_endpoint, join_token, join_token_file, package_max_mb, package_max_unpacked_mb, package_max_files"
        )
      }
    }
  }

  /// The settings by name, for `agent.config.getoption`.
  package var options: [String: JSONValue] {
    [
      "state_dir": .string(stateDirectory),
      "runtime_dir": .string(runtimeDirectory),
      "socket": .string(socketPath),
      "node_name": .string(nodeName),
      "labels": .object(labels.mapValues(JSONValue.string)),
      "socket_mode": .string("0" + String(socketMode, radix: 8)),
      "socket_group": socketGroup.map(JSONValue.string) ?? .null,
      "command_timeout": .string(DurationText.format(commandTimeout)),
      "stop_plugins_on_exit": .bool(stopPluginsOnExit),
      "trusted_keys": trustedKeysDirectory.map(JSONValue.string) ?? .null,
      "require_signed": .bool(requireSigned),
      "server": server.map(JSONValue.string) ?? .null,
    ]
  }
}
