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
public struct PluginManifest: Hashable, Sendable {
  /// The plugin's name: letters, digits, `.`, `_` and `-`.
  public var name: String
  /// The plugin's version, free-form (`1.0.0`).
  public var version: String
  /// The executable, resolved to an absolute path.
  public var entrypoint: String
  /// Arguments placed before the launch contract's own.
  public var args: [String]
  /// Which launch contract the plugin speaks.
  public var launchProtocol: LaunchProtocol
  /// The go-plugin handshake settings (used with ``LaunchProtocol/goPlugin``).
  public var handshake: Handshake
  /// The expected SHA-256 of the entrypoint file, lowercase hex, if pinned.
  public var sha256: String?
  /// The configuration sent with Start.
  public var config: Config?
  /// Variables added to the plugin's environment.
  public var environment: [String: String]
  /// Start, stop and per-call timeouts.
  public var timeouts: Timeouts
  /// Health checking.
  public var health: Health
  /// Restart backoff.
  public var restart: Restart
  /// The folder the manifest was read from, absolute.
  public var directory: String

  /// The launch contracts a plugin can speak.
  public enum LaunchProtocol: String, Hashable, Sendable, CaseIterable {
    /// `ENTRY ARGS --protocol=unix --address=SOCKET --errorlogfile=LOG`.
    case guestAgent = "guest-agent"
    /// HashiCorp go-plugin in gRPC mode: magic cookie in, handshake line out.
    case goPlugin = "go-plugin"
  }

  /// The go-plugin handshake: the magic cookie and the app protocol version.
  public struct Handshake: Hashable, Sendable {
    /// The environment variable carrying the cookie.
    public var cookieKey: String
    /// The cookie's value.
    public var cookieValue: String
    /// The application protocol version offered in `PLUGIN_PROTOCOL_VERSIONS`.
    public var appVersion: Int

    /// Deckhand's own cookie, used when a manifest gives none.
    public static let deckhand = Handshake(
      cookieKey: "DECKHAND_PLUGIN_COOKIE",
      cookieValue: "plugin_comm.GuestAgentPlugin",
      appVersion: 1
    )

    public init(cookieKey: String, cookieValue: String, appVersion: Int) {
      self.cookieKey = cookieKey
      self.cookieValue = cookieValue
      self.appVersion = appVersion
    }
  }

  /// The configuration sent with Start: `string_config` or `struct_config`.
  public enum Config: Hashable, Sendable {
    case string(String)
    case object([String: JSONValue])
  }

  /// Timeouts, in seconds in the manifest.
  public struct Timeouts: Hashable, Sendable {
    /// From launch until the plugin accepts calls. Default 30 s.
    public var start: Duration = .seconds(30)
    /// The Stop deadline; after it the process group is killed. Default 10 s.
    public var stop: Duration = .seconds(10)
    /// Each call to the plugin. Default 5 s.
    public var call: Duration = .seconds(5)
    public init() {}
  }

  /// Health checking: GetStatus with no data every `interval`.
  public struct Health: Hashable, Sendable {
    /// Time between checks. Default 10 s.
    public var interval: Duration = .seconds(10)
    /// The timeout of one check. Default 2 s.
    public var timeout: Duration = .seconds(2)
    /// Failures in a row that make the plugin unhealthy. Default 2.
    public var failures: Int = 2
    public init() {}
  }

  /// Restart backoff bounds.
  public struct Restart: Hashable, Sendable {
    /// The first delay. Default 1 s.
    public var initialBackoff: Duration = .seconds(1)
    /// The largest delay. Default 60 s.
    public var maxBackoff: Duration = .seconds(60)
    public init() {}
  }

  /// What the plugin may take; nil fields are unlimited.
  public var limits = Limits()

  /// Resource limits (`limits` in the manifest), enforced with cgroups
  /// where the machine has them and rlimits otherwise.
  public struct Limits: Hashable, Sendable {
    /// `memory_mb`: memory, in MiB; past it the plugin is killed (OOM).
    public var memoryMB: Int?
    /// `cpu_percent`: CPU time, in percent of one core (200 = two cores).
    public var cpuPercent: Int?
    /// `pids`: processes and threads.
    public var pids: Int?
    /// `nofile`: open file descriptors.
    public var nofile: Int?
    public init() {}

    /// Whether any limit is set.
    public var isEmpty: Bool { self == Limits() }
  }

  /// What the plugin may use of the Host API (`permissions`).
  public var permissions = Permissions()

  /// The Host API calls a plugin may make beyond its own key-value store,
  /// logging and events.
  public struct Permissions: Hashable, Sendable {
    /// `call`: the plugins it may call (CallPlugin).
    public var call: [String] = []
    /// `commands`: command-socket names it may register, `*` as a suffix
    /// wildcard (`myplugin.*`).
    public var commands: [String] = []
    public init() {}

    /// Whether `commands` lets the plugin register `name`: a pattern
    /// matches itself, and one ending in `*` every name that starts with
    /// what precedes the `*` (`myplugin.*`, or `*` for any).
    public func allowsCommand(_ name: String) -> Bool {
      commands.contains { pattern in
        if pattern.hasSuffix("*") { return name.hasPrefix(pattern.dropLast()) }
        return name == pattern
      }
    }
  }

  /// How the plugin is contained (`isolation` in the manifest).
  public var isolation = Isolation()

  /// Linux isolation for a plugin.
  public struct Isolation: Hashable, Sendable {
    /// `network`: the host's network, or a namespace with only loopback.
    public enum Network: String, Hashable, Sendable {
      case host, none
    }
    public var network = Network.host
    /// `pid_namespace`: the plugin is pid 1 of a namespace of its own.
    public var pidNamespace = false
    /// `mount_namespace`: a private mount namespace.
    public var mountNamespace = false
    /// `readonly_paths`: bind-mounted read-only in that namespace.
    public var readonlyPaths: [String] = []
    /// `user` and `group` to run as.
    public var user: String?
    public var group: String?
    /// `no_new_privileges`: PR_SET_NO_NEW_PRIVS (setuid binaries do not
    /// raise privileges).
    public var noNewPrivileges = false
    /// `optional`: run without the isolation where the machine cannot give
    /// it, instead of failing the launch.
    public var optional = false
    /// `mode`: where the plugin runs.
    public enum Mode: String, Hashable, Sendable {
      /// A process under the agent (the default).
      case local
      /// A Kubernetes pod (`deckhand plugin k8s-manifest` prints it); the
      /// agent does not launch it.
      case k8s
    }
    public var mode = Mode.local
    /// `port`: the TCP port the plugin serves on in `k8s` mode.
    public var port = 7070
    public init() {}

    /// Whether any Linux isolation is asked for.
    public var isEmpty: Bool {
      var plain = self
      plain.optional = false
      plain.mode = .local
      plain.port = Isolation().port
      return plain == Isolation()
    }
  }

  public init(
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
