internal import CDeckhandSystem
package import DeckhandCore
internal import DeckhandGRPC
internal import Foundation

/// Launches plugins under either launch contract and waits until they serve.
///
/// ```swift
/// let launcher = PluginLauncher(paths: .defaults())
/// let plugin = try await launcher.launch(manifest)
/// try await GRPCPluginTransport().withConnection(to: plugin.address) { connection in … }
/// ```
package struct PluginLauncher: Sendable {
  /// Where state, logs and sockets go.
  package var paths: HostPaths
  /// The environment plugins start from, before the manifest's `env` and
  /// the variables of their contract: by default only
  /// ``inheritedVariables`` of the host's own (as systemd gives a service
  /// a clean environment). The host's may hold secrets
  /// (`DECKHAND_JOIN_TOKEN`) that no plugin should see.
  package var baseEnvironment: [String: String]

  /// What a plugin inherits from the host's environment: the search path,
  /// the locale, the time zone, and the lean gRPC spin budget (so that one
  /// setting tunes both ends).
  package static let inheritedVariables: Set<String> = [
    "PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "DECKHAND_GRPC_SPIN_US",
  ]

  /// The search path a plugin gets when the host has none.
  package static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

  /// `environment` cut down to what a plugin inherits.
  package static func minimalEnvironment(from environment: [String: String]) -> [String: String] {
    var minimal = environment.filter { inheritedVariables.contains($0.key) }
    if minimal["PATH", default: ""].isEmpty { minimal["PATH"] = defaultPath }
    return minimal
  }
  /// Where plugins send their spans (`OTEL_EXPORTER_OTLP_ENDPOINT`); nil
  /// (the default): the host exports no traces, and plugins get no OTEL
  /// variables. Each plugin also gets `OTEL_SERVICE_NAME` (its name) and
  /// `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`; its manifest's `env` may override
  /// them.
  package var tracesEndpoint: String?
  /// Called with every line a plugin writes to stdout or stderr.
  package var onOutputLine: (@Sendable (_ plugin: String, _ stream: String, _ line: String) -> Void)?
  /// Whether plugins write their output to log files in the state
  /// directory (`logs/NAME.stdout.log`, `logs/NAME.stderr.log`) instead of
  /// pipes, so that they can outlive the host (the agent) and be
  /// re-attached by the next one.
  package var outliveHost: Bool
  /// Runs before every launch, after the entrypoint's checks; a throw
  /// refuses the launch (a signature policy, say).
  package var preLaunchCheck: (@Sendable (PluginManifest) throws -> Void)?
  /// Told the pid of each plugin process right after it is spawned,
  /// before it can call anything (the Host API admits it by this pid).
  package var onSpawn: (@Sendable (Int32) -> Void)?
  /// The environment variable that marks one launch's processes.
  package static let instanceKey = "DECKHAND_PLUGIN_INSTANCE"
  /// The environment variable that marks every plugin process of one host
  /// (``ProcessSweep/ownerKey(_:)`` of its state directory), so that the
  /// next host finds those no record names (``endUnrecorded(keeping:)``).
  package static let ownerKeyName = "DECKHAND_PLUGIN_OWNER"

  /// This host's `DECKHAND_PLUGIN_OWNER=…` entry.
  package var ownerEntry: String { "\(Self.ownerKeyName)=\(ProcessSweep.ownerKey(paths.stateDirectory))" }

  /// Ends every plugin process of this host (by its owner entry) whose
  /// launch is not one of `instances` (the `DECKHAND_PLUGIN_INSTANCE=…`
  /// entries of the plugins the host adopted): a plugin a killed host had
  /// spawned but not yet recorded (mid-install or upgrade), which would
  /// otherwise keep serving the plugin's socket beside the new launch.
  /// Returns the pids it killed. Blocking: reads /proc.
  package func endUnrecorded(keeping instances: Set<String>) -> [Int32] {
    let stray = ProcessSweep(marker: ownerEntry).members().filter { pid in
      guard let instance = ProcessSweep.environmentEntry(Self.instanceKey, of: pid) else { return true }
      return !instances.contains(instance)
    }
    for pid in stray { _ = kill(pid, SIGKILL) }
    return stray
  }
  /// Enforces manifests' `limits`; by default what the machine offers
  /// (``ResourceControl/machine``), detected on the first plugin that has
  /// limits.
  package var resources: ResourceControl?

  package init(
    paths: HostPaths,
    baseEnvironment: [String: String]? = nil,
    outliveHost: Bool = false,
    onOutputLine: (@Sendable (_ plugin: String, _ stream: String, _ line: String) -> Void)? = nil
  ) {
    self.paths = paths
    self.baseEnvironment = baseEnvironment ?? Self.minimalEnvironment(from: ProcessInfo.processInfo.environment)
    self.outliveHost = outliveHost
    self.onOutputLine = onOutputLine
  }

  private func output(for name: String) throws(DeckhandError) -> ChildProcess.Output {
    outliveHost ? .files(stdout: try paths.stdoutLog(name), stderr: try paths.stderrLog(name)) : .pipes
  }

  /// What a host records of a running plugin so that the next host can
  /// re-attach to it.
  package struct Attachment: Hashable, Sendable, Codable {
    /// The process id.
    package var pid: Int32
    /// The process's start time in clock ticks since boot (/proc/PID/stat
    /// field 22): with the executable, what tells it from a process that
    /// reused the pid.
    package var startTime: UInt64
    /// Where it serves.
    package var address: PluginAddress
    /// The socket file to remove once it is gone, if the host owns one.
    package var socket: String?

    /// Whether the recorded process still exists: the pid is there and
    /// started at the recorded time (not a process that reused the pid).
    var isRunning: Bool { pid > 0 && deckhand_process_start_time(pid) == startTime }

    package init(pid: Int32, startTime: UInt64, address: PluginAddress, socket: String?) {
      self.pid = pid
      self.startTime = startTime
      self.address = address
      self.socket = socket
    }
  }

  /// Kills the process group an attachment describes, if that process
  /// still runs (same pid and start time) but could not be taken over (it
  /// no longer answers on its socket, say): it must not linger beside the
  /// instance launched in its place. Returns whether it did.
  @discardableResult
  package func killStale(_ attachment: Attachment) -> Bool {
    let pid = attachment.pid
    guard attachment.isRunning else { return false }
    kill(-pid, SIGKILL)
    kill(pid, SIGKILL)
    // Not our child: wait for it to be gone or a zombie for its parent
    // (init) to reap.
    for _ in 0..<200 where attachment.isRunning && !Self.isZombie(pid) {
      usleep(5_000)
    }
    if let socket = attachment.socket { SocketFile.remove(socket, runtimeDirectory: paths.runtimeDirectory) }
    return true
  }

  private static func isZombie(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
    return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
  }

  /// Takes over a plugin that a previous host launched and left running,
  /// if `attachment` still describes it: the pid is alive, started at the
  /// recorded time, runs the manifest's entrypoint, and its socket accepts.
  /// Nil otherwise (it is then to be launched again).
  package func attach(_ manifest: PluginManifest, _ attachment: Attachment) -> LaunchedPlugin? {
    let pid = attachment.pid
    guard attachment.isRunning else { return nil }
    guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe") else {
      return nil
    }
    // A binary replaced on disk since shows as "PATH (deleted)".
    guard let resolved = realpath(manifest.entrypoint, nil) else { return nil }
    let entrypoint = String(cString: resolved)
    free(resolved)
    guard executable == entrypoint || executable == entrypoint + " (deleted)" else { return nil }
    if case .unix(let path) = attachment.address, deckhand_unix_probe(path) != 0 { return nil }
    guard let stdoutLog = try? paths.stdoutLog(manifest.name), let stderrLog = try? paths.stderrLog(manifest.name),
      let errorLog = try? paths.errorLog(manifest.name),
      let process = ChildProcess.attach(pid: pid, stdoutLog: stdoutLog, stderrLog: stderrLog)
    else { return nil }
    let control = manifest.limits.isEmpty ? nil : (resources ?? .machine)
    var plugin = LaunchedPlugin(
      manifest: manifest, process: process, address: attachment.address, socketToRemove: attachment.socket,
      errorLog: manifest.launchProtocol == .guestAgent ? errorLog : nil,
      launchedAt: .now, paths: paths, limits: control?.existing(plugin: manifest.name), resources: control)
    // Its launch's entry, read back, so that what it leaves when it exits
    // is found as for a plugin this host launched.
    plugin.instance = ProcessSweep.environmentEntry(Self.instanceKey, of: pid) ?? ""
    return plugin
  }

  /// Checks the entrypoint, spawns the plugin and waits until it serves:
  /// its socket accepts (guest-agent) or its handshake line names its
  /// address (go-plugin), within `timeouts.start_s`.
  ///
  /// On failure nothing of the plugin is left running.
  package func launch(_ manifest: PluginManifest) async throws -> LaunchedPlugin {
    guard manifest.isolation.mode == .local else {
      throw DeckhandError(
        .isolationUnavailable,
        "plugin \(manifest.name) has isolation.mode \"k8s\": it runs as a Kubernetes pod, not as a process of this host; print its pod with `deckhand plugin k8s-manifest \(manifest.directory)/plugin.json --image IMAGE`"
      )
    }
    try Self.verifyEntrypoint(manifest)
    try preLaunchCheck?(manifest)
    try paths.prepare(for: manifest.name)
    let isolation = manifest.isolation.isEmpty ? nil : try Self.resolve(manifest.isolation, plugin: manifest.name)
    // A plugin that runs as another user gets a socket folder of its own,
    // and its state directory and error log, owned by that user.
    let socketDirectory = try isolation.flatMap { try privateSocketDirectory(for: manifest.name, $0) }
    let started = ContinuousClock.now
    var environment = baseEnvironment
    if let tracesEndpoint {
      environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = tracesEndpoint
      environment["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
      environment["OTEL_SERVICE_NAME"] = manifest.name
    }
    for (key, value) in manifest.environment { environment[key] = value }
    // Marks this launch's processes, children included, so that what a
    // plugin leaves behind can be found after it is gone.
    let instance = "\(manifest.name)-\(UInt64.random(in: 0...UInt64.max))"
    environment[Self.instanceKey] = instance
    environment[Self.ownerKeyName] = ProcessSweep.ownerKey(paths.stateDirectory)
    let name = manifest.name
    var onLine: (@Sendable (ChildProcess.Stream, String) -> Void)?
    if let handler = onOutputLine {
      onLine = { stream, line in handler(name, stream.rawValue, line) }
    }

    switch manifest.launchProtocol {
    case .guestAgent:
      let socket = try socketDirectory.map { "\($0)/plugin.sock" } ?? paths.socket(name)
      try Self.clearStaleSocket(socket, plugin: name)
      let errorLog = try paths.errorLog(name)
      let arguments = manifest.args + ["--protocol=unix", "--address=\(socket)", "--errorlogfile=\(errorLog)"]
      let process = try spawn(
        manifest, isolation, arguments: arguments, environment: environment, onLine: onLine)
      let (limits, control) = try await constrain(process, manifest)
      var plugin = LaunchedPlugin(
        manifest: manifest, process: process, address: .unix(path: socket), socketToRemove: socket,
        errorLog: errorLog, launchedAt: started, paths: paths, limits: limits, resources: control)
      plugin.instance = "\(Self.instanceKey)=\(instance)"
      try await plugin.failingCleanly { try await waitForSocket(plugin, socket: socket, started: started) }
      return plugin

    case .goPlugin:
      let handshake = manifest.handshake
      environment[handshake.cookieKey] = handshake.cookieValue
      environment["PLUGIN_PROTOCOL_VERSIONS"] = String(handshake.appVersion)
      environment["PLUGIN_MIN_PORT"] = environment["PLUGIN_MIN_PORT"] ?? "10000"
      environment["PLUGIN_MAX_PORT"] = environment["PLUGIN_MAX_PORT"] ?? "25000"
      // Its own folder for its socket: go-plugin puts it in
      // PLUGIN_UNIX_SOCKET_DIR, older versions (1.0.x) in TMPDIR. The
      // handshake may name nothing outside it.
      let folder = try socketDirectory ?? makeSocketFolder(for: name)
      environment["PLUGIN_UNIX_SOCKET_DIR"] = folder
      environment["TMPDIR"] = folder
      let process = try spawn(
        manifest, isolation, arguments: manifest.args, environment: environment, onLine: onLine)
      let (limits, control) = try await constrain(process, manifest)
      var pending = LaunchedPlugin(
        manifest: manifest, process: process, address: .unix(path: ""), socketToRemove: nil,
        errorLog: nil, launchedAt: started, paths: paths, limits: limits, resources: control)
      pending.instance = "\(Self.instanceKey)=\(instance)"
      let (address, socket) = try await pending.failingCleanly { () async throws -> (PluginAddress, String?) in
        let line = try await readHandshake(pending, started: started)
        let endpoint: GoPluginHandshake.Endpoint
        do throws(DeckhandError) {
          endpoint = try line.checkedEndpoint(socketFolder: folder)
        } catch {
          throw DeckhandError(.handshakeFailed, "plugin \(name): \(error.message)")
        }
        switch endpoint {
        case .unix(let path): return (.unix(path: path), path)
        case .tcp(let host, let port): return (.tcp(host: host, port: port), nil)
        }
      }
      var plugin = LaunchedPlugin(
        manifest: manifest, process: process, address: address, socketToRemove: socket,
        errorLog: nil, launchedAt: started, paths: paths, limits: limits, resources: control)
      plugin.instance = pending.instance
      return plugin
    }
  }

  /// Spawns the plugin, isolated as its manifest asks; with
  /// `isolation.optional`, without the isolation if the machine cannot
  /// give it.
  private func spawn(
    _ manifest: PluginManifest, _ isolation: ChildProcess.Isolation?, arguments: [String],
    environment: [String: String], onLine: (@Sendable (ChildProcess.Stream, String) -> Void)?
  ) throws -> ChildProcess {
    func run(_ isolation: ChildProcess.Isolation?) throws -> ChildProcess {
      let process = try ChildProcess.spawn(
        executable: manifest.entrypoint, arguments: arguments, environment: environment,
        workingDirectory: manifest.directory, output: try output(for: manifest.name), isolation: isolation,
        onLine: onLine)
      onSpawn?(process.pid)
      return process
    }
    do {
      return try run(isolation)
    } catch let error as DeckhandError where error.code == .isolationUnavailable {
      if manifest.isolation.optional { return try run(nil) }
      throw DeckhandError(
        .isolationUnavailable,
        "plugin \(manifest.name): \(error.message); this host cannot give the isolation the manifest asks for (run it as root, or mark \"isolation\": {\"optional\": true} to run without)"
      )
    }
  }

  /// For a plugin that switches user or group: `RUNTIME/NAME.d` (0700,
  /// its own) for its socket, the runtime folder made traversable (0711),
  /// and its state directory and error log given to it. Nil otherwise.
  private func privateSocketDirectory(for name: String, _ isolation: ChildProcess.Isolation) throws -> String? {
    guard isolation.uid >= 0 || isolation.gid >= 0 else { return nil }
    let uid = isolation.uid >= 0 ? uid_t(isolation.uid) : uid_t.max
    let gid = isolation.gid >= 0 ? gid_t(isolation.gid) : gid_t.max
    let folder = try paths.socketFolder(name)
    if mkdir(folder, 0o700) != 0 && errno != EEXIST {
      throw DeckhandError(.launchFailed, "plugin \(name): cannot create \(folder): \(String(cString: strerror(errno)))")
    }
    let errorLog = try paths.errorLog(name)
    if !FileManager.default.fileExists(atPath: errorLog) {
      _ = FileManager.default.createFile(atPath: errorLog, contents: nil, attributes: [.posixPermissions: 0o600])
    }
    for path in [folder, try paths.pluginStateDirectory(name), errorLog] where chown(path, uid, gid) != 0 {
      throw DeckhandError(
        .launchFailed,
        "plugin \(name): cannot give \(path) to isolation.user/group: \(String(cString: strerror(errno)))")
    }
    for traversed in [
      paths.runtimeDirectory, paths.stateDirectory, "\(paths.stateDirectory)/plugins", "\(paths.stateDirectory)/logs",
      "\(paths.stateDirectory)/verified",
    ] {
      chmod(traversed, 0o711)
    }
    return folder
  }

  /// The manifest's isolation with user and group names turned into ids.
  package static func resolve(_ isolation: PluginManifest.Isolation, plugin: String) throws -> ChildProcess.Isolation {
    var resolved = ChildProcess.Isolation()
    resolved.newNetwork = isolation.network == .none
    resolved.newPID = isolation.pidNamespace
    resolved.newMount = isolation.mountNamespace
    resolved.readonlyPaths = isolation.readonlyPaths
    resolved.noNewPrivileges = isolation.noNewPrivileges
    if let user = isolation.user {
      guard let entry = getpwnam(user) else {
        throw DeckhandError(.configurationInvalid, "plugin \(plugin): isolation.user \(user): no such user")
      }
      resolved.uid = Int32(bitPattern: entry.pointee.pw_uid)
      resolved.gid = Int32(bitPattern: entry.pointee.pw_gid)
    }
    if let group = isolation.group {
      guard let entry = getgrnam(group) else {
        throw DeckhandError(.configurationInvalid, "plugin \(plugin): isolation.group \(group): no such group")
      }
      resolved.gid = Int32(bitPattern: entry.pointee.gr_gid)
    }
    return resolved
  }

  /// Puts a just-spawned process under its manifest's limits; kills it if
  /// that fails.
  private func constrain(_ process: ChildProcess, _ manifest: PluginManifest) async throws
    -> (ResourceControl.Applied?, ResourceControl?)
  {
    guard !manifest.limits.isEmpty else { return (nil, nil) }
    let control = resources ?? .machine
    do {
      return (try control.apply(manifest.limits, pid: process.pid, plugin: manifest.name), control)
    } catch {
      await process.killGroupAndWait()
      throw error
    }
  }

  /// Checks that the entrypoint is an executable file with the pinned digest.
  package static func verifyEntrypoint(_ manifest: PluginManifest) throws {
    let path = manifest.entrypoint
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
      throw DeckhandError(
        .launchFailed,
        "plugin \(manifest.name): entrypoint \(path) does not exist; fix \"entrypoint\" in \(manifest.directory)/plugin.json or build the plugin"
      )
    }
    guard access(path, X_OK) == 0 else {
      throw DeckhandError(.launchFailed, "plugin \(manifest.name): entrypoint \(path) is not executable (chmod +x)")
    }
    if let expected = manifest.sha256 {
      let actual = try FileDigest.sha256(ofFile: path)
      guard actual == expected else {
        throw DeckhandError(
          .checksumMismatch,
          "plugin \(manifest.name): refusing to launch \(path): its sha256 is \(actual) but the manifest pins \(expected); if the new binary is trusted, update \"sha256\""
        )
      }
    }
  }

  private static func clearStaleSocket(_ socket: String, plugin: String) throws {
    var info = stat()
    guard lstat(socket, &info) == 0 else { return }
    guard SocketFile.isSocket(socket) else {
      throw DeckhandError(
        .launchFailed,
        "plugin \(plugin): \(socket) exists and is not a socket; the host removes only sockets: move it away")
    }
    if deckhand_unix_probe(socket) == 0 {
      throw DeckhandError(
        .launchFailed,
        "plugin \(plugin): \(socket) is served by another process (another instance of the plugin?); stop it first")
    }
    unlink(socket)
  }

  /// `RUNTIME/NAME.d`, the folder of a plugin's socket, made (0700) if
  /// missing; refused if something other than a folder is there.
  private func makeSocketFolder(for name: String) throws -> String {
    let folder = try paths.socketFolder(name)
    if mkdir(folder, 0o700) != 0 && errno != EEXIST {
      throw DeckhandError(.launchFailed, "plugin \(name): cannot create \(folder): \(String(cString: strerror(errno)))")
    }
    var info = stat()
    guard lstat(folder, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
      throw DeckhandError(.launchFailed, "plugin \(name): \(folder) is not a folder; move it away")
    }
    return folder
  }

  private func waitForSocket(_ plugin: LaunchedPlugin, socket: String, started: ContinuousClock.Instant)
    async throws
  {
    let name = plugin.manifest.name
    // Poll finely at first: most plugins bind within a few milliseconds, and
    // a coarse doubling backoff would add up to its last step to every
    // launch. A connect() attempt on a unix socket costs microseconds: every
    // 50 µs for the first 10 ms (half a pause, 25 µs, is what a launch waits
    // on average past the bind; it was 100 µs of about 4.7 ms), then every
    // 200 µs, then doubling after 100 ms. The pauses are an event loop's
    // timer (``LoopSleep``): one thread woken per poll, where `Task.sleep`
    // woke three.
    var pause = Duration.microseconds(50)
    while true {
      if deckhand_unix_probe(socket) == 0 { return }
      if let exit = plugin.process.exit {
        throw DeckhandError(
          .pluginExited,
          "plugin \(name) \(exit) before its socket \(socket) accepted\(plugin.lastLinesSuffix())")
      }
      if started.duration(to: .now) > plugin.manifest.timeouts.start {
        throw DeckhandError(
          .startTimeout,
          "plugin \(name): socket \(socket) did not accept within \(plugin.manifest.timeouts.start) (timeouts.start_s); a guest-agent plugin must listen on the path given as --address\(plugin.lastLinesSuffix())"
        )
      }
      try? await LoopSleep.sleep(for: pause)
      if Task.isCancelled {
        throw DeckhandError(.startTimeout, "plugin \(name): launch cancelled")
      }
      let waited = started.duration(to: .now)
      if waited > .milliseconds(100) {
        pause = min(pause * 2, .milliseconds(20))
      } else if waited > .milliseconds(10) {
        pause = .microseconds(200)
      }
    }
  }

  private func readHandshake(_ plugin: LaunchedPlugin, started: ContinuousClock.Instant)
    async throws -> GoPluginHandshake
  {
    let manifest = plugin.manifest
    let timeout = manifest.timeouts.start
    let result = await firstResult(within: timeout - started.duration(to: .now)) {
      () async -> Result<GoPluginHandshake, DeckhandError>? in
      for await line in plugin.process.stdoutLines {
        guard GoPluginHandshake.looksLikeHandshake(line) else { continue }
        do {
          return .success(try GoPluginHandshake.parse(line, offeredVersions: [manifest.handshake.appVersion]))
        } catch let error as DeckhandError {
          return .failure(DeckhandError(error.code, "plugin \(manifest.name): \(error.message)"))
        } catch {
          return .failure(DeckhandError(.internalError, "plugin \(manifest.name): \(error)"))
        }
      }
      let exit = await plugin.process.waitForExit(timeout: .seconds(1))
      let how = exit.map { "\($0)" } ?? "closed its stdout"
      return .failure(
        DeckhandError(
          .pluginExited,
          "plugin \(manifest.name) \(how) before printing its go-plugin handshake line (expected CORE|APP|NETWORK|ADDRESS|grpc); is it a go-plugin plugin, and does handshake.cookie_key/cookie_value match its own?\(plugin.lastLinesSuffix())"
        ))
    }
    return try
      (result
      ?? .failure(
        DeckhandError(
          .startTimeout,
          "plugin \(manifest.name): no go-plugin handshake line on stdout within \(timeout) (timeouts.start_s)\(plugin.lastLinesSuffix())"
        ))).get()
  }
}
