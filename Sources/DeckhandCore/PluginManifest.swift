/// What the host needs to know to launch and supervise a plugin: the
/// contents of its `plugin.json`.
///
/// ```json
/// { "name": "echo", "version": "1.0.0", "entrypoint": "deckhand-example-echo",
///   "protocol": "guest-agent", "config": {"greeting": "hi"} }
/// ```
///
/// Parse one with ``PluginManifest/parse(_:path:)``; every field not given
/// takes the default shown in its documentation.
package struct PluginManifest: Hashable, Sendable {
  /// The plugin's name: letters, digits, `.`, `_` and `-`.
  package var name: String
  /// The plugin's version, free-form (`1.0.0`).
  package var version: String
  /// The executable, resolved to an absolute path.
  package var entrypoint: String
  /// Arguments placed before the launch contract's own.
  package var args: [String]
  /// Which launch contract the plugin speaks.
  package var launchProtocol: LaunchProtocol
  /// The go-plugin handshake settings (used with ``LaunchProtocol/goPlugin``).
  package var handshake: Handshake
  /// The expected SHA-256 of the entrypoint file, lowercase hex, if pinned.
  package var sha256: String?
  /// The configuration sent with Start.
  package var config: Config?
  /// Variables added to the plugin's environment.
  package var environment: [String: String]
  /// Start, stop and per-call timeouts.
  package var timeouts: Timeouts
  /// Health checking.
  package var health: Health
  /// Restart backoff.
  package var restart: Restart
  /// The folder the manifest was read from, absolute.
  package var directory: String

  /// The launch contracts a plugin can speak.
  package enum LaunchProtocol: String, Hashable, Sendable, CaseIterable {
    /// `ENTRY ARGS --protocol=unix --address=SOCKET --errorlogfile=LOG`.
    case guestAgent = "guest-agent"
    /// HashiCorp go-plugin in gRPC mode: magic cookie in, handshake line out.
    case goPlugin = "go-plugin"
  }

  /// The go-plugin handshake: the magic cookie and the app protocol version.
  package struct Handshake: Hashable, Sendable {
    /// The environment variable carrying the cookie.
    package var cookieKey: String
    /// The cookie's value.
    package var cookieValue: String
    /// The application protocol version offered in `PLUGIN_PROTOCOL_VERSIONS`.
    package var appVersion: Int

    /// Deckhand's own cookie, used when a manifest gives none.
    package static let deckhand = Handshake(
      cookieKey: "DECKHAND_PLUGIN_COOKIE",
      cookieValue: "plugin_comm.GuestAgentPlugin",
      appVersion: 1
    )

    package init(cookieKey: String, cookieValue: String, appVersion: Int) {
      self.cookieKey = cookieKey
      self.cookieValue = cookieValue
      self.appVersion = appVersion
    }
  }

  /// The configuration sent with Start: `string_config` or `struct_config`.
  package enum Config: Hashable, Sendable {
    case string(String)
    case object([String: JSONValue])
  }

  /// Timeouts, in seconds in the manifest.
  package struct Timeouts: Hashable, Sendable {
    /// From launch until the plugin accepts calls. Default 30 s.
    package var start: Duration = .seconds(30)
    /// The Stop deadline; after it the process group is killed. Default 10 s.
    package var stop: Duration = .seconds(10)
    /// Each call to the plugin. Default 5 s.
    package var call: Duration = .seconds(5)
    package init() {}
  }

  /// Health checking: GetStatus with no data every `interval`.
  package struct Health: Hashable, Sendable {
    /// Time between checks. Default 10 s.
    package var interval: Duration = .seconds(10)
    /// The timeout of one check. Default 2 s.
    package var timeout: Duration = .seconds(2)
    /// Failures in a row that make the plugin unhealthy. Default 2.
    package var failures: Int = 2
    package init() {}
  }

  /// Restart backoff bounds.
  package struct Restart: Hashable, Sendable {
    /// The first delay. Default 1 s.
    package var initialBackoff: Duration = .seconds(1)
    /// The largest delay. Default 60 s.
    package var maxBackoff: Duration = .seconds(60)
    package init() {}
  }

  /// What the plugin may take; nil fields are unlimited.
  package var limits = Limits()

  /// Resource limits (`limits` in the manifest), enforced with cgroups
  /// where the machine has them and rlimits otherwise.
  package struct Limits: Hashable, Sendable {
    /// `memory_mb`: memory, in MiB; past it the plugin is killed (OOM).
    package var memoryMB: Int?
    /// `cpu_percent`: CPU time, in percent of one core (200 = two cores).
    package var cpuPercent: Int?
    /// `pids`: processes and threads.
    package var pids: Int?
    /// `nofile`: open file descriptors.
    package var nofile: Int?
    package init() {}

    /// Whether any limit is set.
    package var isEmpty: Bool { self == Limits() }
  }

  /// What the plugin may use of the Host API (`permissions`).
  package var permissions = Permissions()

  /// The Host API calls a plugin may make beyond its own key-value store,
  /// logging and events.
  package struct Permissions: Hashable, Sendable {
    /// `call`: the plugins it may call (CallPlugin).
    package var call: [String] = []
    /// `commands`: command-socket names it may register, `*` as a suffix
    /// wildcard (`myplugin.*`).
    package var commands: [String] = []
    package init() {}

    /// Whether `commands` lets the plugin register `name`: a pattern
    /// matches itself, and one ending in `*` every name that starts with
    /// what precedes the `*` (`myplugin.*`, or `*` for any).
    package func allowsCommand(_ name: String) -> Bool {
      commands.contains { pattern in
        if pattern.hasSuffix("*") { return name.hasPrefix(pattern.dropLast()) }
        return name == pattern
      }
    }
  }

  /// How the plugin is contained (`isolation` in the manifest).
  package var isolation = Isolation()

  /// Linux isolation for a plugin.
  package struct Isolation: Hashable, Sendable {
    /// `network`: the host's network, or a namespace with only loopback.
    package enum Network: String, Hashable, Sendable {
      case host, none
    }
    package var network = Network.host
    /// `pid_namespace`: the plugin is pid 1 of a namespace of its own.
    package var pidNamespace = false
    /// `mount_namespace`: a private mount namespace.
    package var mountNamespace = false
    /// `readonly_paths`: bind-mounted read-only in that namespace.
    package var readonlyPaths: [String] = []
    /// `user` and `group` to run as.
    package var user: String?
    package var group: String?
    /// `no_new_privileges`: PR_SET_NO_NEW_PRIVS (setuid binaries do not
    /// raise privileges).
    package var noNewPrivileges = false
    /// `optional`: run without the isolation where the machine cannot give
    /// it, instead of failing the launch.
    package var optional = false
    /// `mode`: where the plugin runs.
    package enum Mode: String, Hashable, Sendable {
      /// A process under the agent (the default).
      case local
      /// A Kubernetes pod (`deckhand plugin k8s-manifest` prints it); the
      /// agent does not launch it.
      case k8s
    }
    package var mode = Mode.local
    /// `port`: the TCP port the plugin serves on in `k8s` mode.
    package var port = 7070
    package init() {}

    /// Whether any Linux isolation is asked for.
    package var isEmpty: Bool {
      var plain = self
      plain.optional = false
      plain.mode = .local
      plain.port = Isolation().port
      return plain == Isolation()
    }
  }

  package init(
    name: String,
    version: String,
    entrypoint: String,
    args: [String] = [],
    launchProtocol: LaunchProtocol = .guestAgent,
    handshake: Handshake = .deckhand,
    sha256: String? = nil,
    config: Config? = nil,
    environment: [String: String] = [:],
    timeouts: Timeouts = Timeouts(),
    health: Health = Health(),
    restart: Restart = Restart(),
    directory: String
  ) {
    self.name = name
    self.version = version
    self.entrypoint = entrypoint
    self.args = args
    self.launchProtocol = launchProtocol
    self.handshake = handshake
    self.sha256 = sha256
    self.config = config
    self.environment = environment
    self.timeouts = timeouts
    self.health = health
    self.restart = restart
    self.directory = directory
  }
}
