package import DeckhandCore
internal import DeckhandGRPC
package import DeckhandPluginHost
internal import DeckhandProtocol
internal import DeckhandRuntime
internal import Foundation
package import Logging
internal import SwiftProtobuf
internal import Synchronization
internal import Tracing

/// The agent's set of installed plugins: installs (and upgrades with
/// rollback), removes, restarts, and brings back after an agent restart by
/// re-attaching to the processes still running.
///
/// One operation at a time (an actor); calls into plugins run outside it.
package actor PluginManager {
  /// One installed plugin and the supervisor that keeps it running.
  package struct Entry: Sendable {
    package let record: InstalledPlugin
    package let manifest: PluginManifest
    package let supervisor: PluginSupervisor
    package let runtime: PluginRuntime
    /// Set when its supervisor's run ended.
    let finished: OnceValue<Void>
    let hostAPI: HostAPIServer?
    /// The root-owned copy it runs from, when it is signed.
    let verified: VerifiedPackage?
  }

  /// What the trust policy says of a plugin.
  enum Verification {
    /// No policy, or an unsigned plugin the policy lets through: it runs
    /// from its own files.
    case unchecked
    /// Signed and checked: it runs from this copy.
    case verified(VerifiedPackage)
    /// Refused: every launch fails with this.
    case refused(any Error)

    var package: VerifiedPackage? {
      if case .verified(let package) = self { package } else { nil }
    }
  }

  private let store: AgentStore
  private let launcher: PluginLauncher
  private let transport: any PluginTransport
  private let logger: Logger
  private let shutdownBehaviour: PluginSupervisor.ShutdownBehaviour
  private let trust: TrustPolicy?
  private let commands: PluginCommandRouter
  private let hostAPIAlsoAdmits: Int32?
  private let metrics: AgentMetrics
  private var entries: [String: Entry] = [:] {
    didSet { installedCount.withLock { $0 = entries.count } }
  }
  private let installedCount = Mutex(0)
  /// Supervisors for ``run()`` to run as its children.
  private let supervisors: AsyncStream<(name: String, supervisor: PluginSupervisor, finished: OnceValue<Void>)>
  private let newSupervisor:
    AsyncStream<(name: String, supervisor: PluginSupervisor, finished: OnceValue<Void>)>.Continuation

  /// How many plugins are installed, readable without waiting for the
  /// actor.
  package nonisolated var count: Int { installedCount.withLock { $0 } }

  package init(
    store: AgentStore, launcher: PluginLauncher, transport: any PluginTransport = LeanPluginTransport(),
    shutdownBehaviour: PluginSupervisor.ShutdownBehaviour, trust: TrustPolicy? = nil,
    registry: CommandRegistry = CommandRegistry(), hostAPIAlsoAdmits: Int32? = nil, metrics: AgentMetrics = .off,
    logger: Logger
  ) {
    self.metrics = metrics
    self.hostAPIAlsoAdmits = hostAPIAlsoAdmits
    self.trust = trust
    (supervisors, newSupervisor) = AsyncStream.makeStream()
    self.commands = PluginCommandRouter(registry: registry, store: store, logger: logger)
    self.store = store
    self.launcher = launcher
    self.transport = transport
    self.shutdownBehaviour = shutdownBehaviour
    self.logger = logger
  }

  /// Runs every plugin's supervisor as a child task, until ``shutdown()``
  /// (which stops or detaches them first). Installs and restores need it
  /// running: a plugin is launched by its supervisor.
  package nonisolated func run() async {
    let logger = self.logger
    await withDiscardingTaskGroup { group in
      for await (name, supervisor, finished) in supervisors {
        group.addTask {
          do {
            try await supervisor.run()
          } catch {
            logger.error("supervisor of \(name) failed: \(error)")
          }
          finished.set(())
        }
      }
    }
  }

  /// What each running plugin of `entries` uses now, with its pid, by
  /// name (from its cgroup or /proc: file reads, to run off the event
  /// loops).
  package nonisolated static func usage(of entries: [Entry]) -> [String: (pid: Int32, usage: ProcessUsage)] {
    var usage: [String: (pid: Int32, usage: ProcessUsage)] = [:]
    for entry in entries {
      if let plugin = entry.supervisor.runningPlugin, let sample = ProcessUsage.of(plugin) {
        usage[entry.record.name] = (plugin.pid, sample)
      }
    }
    return usage
  }

  /// The installed plugins, by name.
  package var all: [Entry] { entries.values.sorted { $0.record.name < $1.record.name } }

  /// The plugin called `name`.
  ///
  /// - Throws: ``DeckhandCore/DeckhandError`` naming it if it is not installed.
  package func entry(_ name: String) throws -> Entry {
    guard let entry = entries[name] else {
      let known = entries.keys.sorted()
      throw DeckhandError(
        .notFound,
        "plugin \(name) is not installed\(known.isEmpty ? "" : "; installed: \(known.joined(separator: ", "))")")
    }
    return entry
  }

  /// Brings back every plugin in the database: re-attached if its process
  /// from the previous agent still runs (same pid, start time, executable,
  /// socket), launched again otherwise.
  package func restore() async throws {
    var restoring: [(InstalledPlugin, PluginManifest, Verification, LaunchedPlugin?)] = []
    for record in try store.plugins() {
      let manifest: PluginManifest
      do {
        manifest = try record.manifest()
      } catch {
        logger.error("plugin \(record.name): stored manifest no longer parses (\(error)); skipped")
        continue
      }
      // A plugin the trust policy refuses is not adopted either: its
      // process is killed below and every launch of it refused. A signed
      // one is adopted only if it runs from its verified copy.
      let verification = verification(
        manifest, manifestText: record.manifestText, signature: record.signatureText, reuse: true)
      var adopted: LaunchedPlugin?
      switch verification {
      case .unchecked: adopted = record.attachment.flatMap { launcher.attach(manifest, $0) }
      case .verified(let package):
        adopted = record.attachment.flatMap { launcher.attach(package.relocate(manifest), $0) }
      case .refused: adopted = nil
      }
      if let attachment = record.attachment, adopted == nil {
        if launcher.killStale(attachment) {
          logger.warning(
            "plugin \(record.name): its process from the previous agent (pid \(attachment.pid)) could not be taken over; killed it, launching it again"
          )
        } else {
          logger.info("plugin \(record.name): its process from the previous agent is gone; launching it again")
        }
      }
      restoring.append((record, manifest, verification, adopted))
    }
    // What a killed agent had spawned but not recorded (an install or
    // upgrade cut short) ends before anything is launched: each plugin
    // runs exactly once.
    let keep = Set(restoring.compactMap { $0.3?.instance }.filter { !$0.isEmpty })
    let host = launcher
    let stray = (try? await BlockingWork.run { host.endUnrecorded(keeping: keep) }) ?? []
    if !stray.isEmpty {
      logger.warning(
        "ended \(stray.count) plugin process(es) no record names (pids \(stray)), left by an agent killed mid-launch")
    }
    for (record, manifest, verification, adopted) in restoring {
      entries[record.name] = await start(record, manifest, verification, adopting: adopted)
    }
    try commands.restore(allowed: commandAllowed, forward: forwardCommand)
  }

  /// Installs the manifest at `path`, or upgrades the plugin of that name.
  ///
  /// A first install waits for the plugin's first health check; if it
  /// fails, nothing is kept. An upgrade (the manifest or the entrypoint
  /// changed) prepares the new revision, stops the old one (cleanup false),
  /// starts the new one with the same state directory, and brings the old
  /// revision back if the new one fails its first health check.
  package func install(manifestPath: String) async throws -> Entry {
    guard manifestPath.hasPrefix("/") else {
      throw DeckhandError(.manifestInvalid, "Manifest must be an absolute path, not \(manifestPath)")
    }
    let path = URL(fileURLWithPath: manifestPath).standardizedFileURL.path
    // Read once: these bytes are parsed, verified and stored.
    guard let data = FileManager.default.contents(atPath: path) else {
      throw DeckhandError(.manifestInvalid, "\(path): cannot be read: \(String(cString: strerror(errno)))")
    }
    let manifest = try PluginManifest.parse(data, path: path)
    try PluginLauncher.verifyEntrypoint(manifest)
    let text = String(decoding: data, as: UTF8.self)
    let signature = try? String(contentsOfFile: PluginSigning.signaturePath(forManifest: path), encoding: .utf8)
    let verification = verification(manifest, manifestText: text, signature: signature)
    if case .refused(let error) = verification { throw error }
    let digest = try verification.package?.signed.entrypoint ?? FileDigest.sha256(ofFile: manifest.entrypoint)
    let now = Date().timeIntervalSince1970

    guard let old = entries[manifest.name] else {
      let record = InstalledPlugin(
        name: manifest.name, revision: 1, manifestPath: path, manifestText: text,
        entrypointDigest: digest, signatureText: signature, installedAt: now)
      try store.save(record)
      let entry = await start(record, manifest, verification, adopting: nil)
      entries[manifest.name] = entry
      if case .failure(let error) = await firstOutcome(entry) {
        await stop(entry, cleanup: false)
        entries[manifest.name] = nil
        VerifiedPackage.prune(manifest.name, root: verifiedRoot, keeping: [])
        try commands.drop(of: manifest.name) { _ in true }
        try store.delete(manifest.name)
        throw DeckhandError(error.code, "plugin \(manifest.name) was not installed: \(error.message)")
      }
      return entry
    }

    if old.record.manifestText == text, old.record.entrypointDigest == digest,
      old.record.manifestPath == path, old.record.signatureText == signature
    {
      return old
    }
    var record = old.record
    record.revision += 1
    record.manifestPath = path
    record.manifestText = text
    record.entrypointDigest = digest
    record.signatureText = signature
    record.installedAt = now
    record.attachment = nil
    await stop(old, cleanup: false)
    try store.save(record)
    let entry = await start(record, manifest, verification, adopting: nil)
    entries[manifest.name] = entry
    if case .failure(let error) = await firstOutcome(entry) {
      await stop(entry, cleanup: false)
      var previous = old.record
      previous.attachment = nil
      previous.restarts = entry.runtime.snapshot.restarts
      try store.save(previous)
      entries[manifest.name] = await start(
        previous, old.manifest, old.verified.map { .verified($0) } ?? .unchecked, adopting: nil)
      throw DeckhandError(
        error.code,
        "revision \(record.revision) of plugin \(manifest.name) (version \(manifest.version)) failed its first health check, so revision \(previous.revision) (version \(old.manifest.version)) runs again: \(error.message)"
      )
    }
    // The new revision keeps only the commands its manifest allows.
    try commands.drop(of: manifest.name) { !manifest.permissions.allowsCommand($0) }
    VerifiedPackage.prune(manifest.name, root: verifiedRoot, keeping: [entry.verified, old.verified].compactMap { $0 })
    return entry
  }

  /// Stops a plugin (Stop with `cleanup`) and forgets it. With `cleanup`
  /// its state directory and logs are removed too.
  package func remove(_ name: String, cleanup: Bool) async throws {
    let entry = try entry(name)
    await stop(entry, cleanup: cleanup)
    entries[name] = nil
    try commands.drop(of: name) { _ in true }
    try store.delete(name)
    VerifiedPackage.prune(name, root: verifiedRoot, keeping: [])
    if cleanup {
      try store.kvDeleteAll(name)
      let paths = launcher.paths
      for path in [
        try paths.pluginStateDirectory(name), try paths.stdoutLog(name), try paths.stderrLog(name),
        try paths.errorLog(name),
      ] {
        try? FileManager.default.removeItem(atPath: path)
      }
    }
  }

  /// Stops a plugin (cleanup false) and launches it again at once.
  package func restart(_ name: String) async throws -> Entry {
    let old = try entry(name)
    await stop(old, cleanup: false)
    old.runtime.countRestart()
    guard let record = try store.plugin(named: name) else {
      throw DeckhandError(.internalError, "plugin \(name) vanished from the database during its restart")
    }
    let entry = await start(record, old.manifest, old.verified.map { .verified($0) } ?? .unchecked, adopting: nil)
    entries[name] = entry
    _ = await firstOutcome(entry)
    return entry
  }

  /// Ends supervision of every plugin: leaves them running for the next
  /// agent, or stops them (`--stop-plugins-on-exit`).
  package func shutdown() async {
    let current = Array(entries.values)
    for entry in current {
      switch shutdownBehaviour {
      case .leaveRunning: entry.supervisor.requestDetach()
      case .stopPlugin: entry.supervisor.requestStop()
      }
    }
    for entry in current {
      await entry.finished.wait()
      await entry.hostAPI?.close()
    }
    newSupervisor.finish()
  }

  private func start(
    _ record: InstalledPlugin, _ installed: PluginManifest, _ verification: Verification, adopting: LaunchedPlugin?
  ) async -> Entry {
    // A signed plugin runs from its verified copy, checked again before
    // each launch; a refused one fails every launch, saying why.
    var manifest = installed
    let runtime = PluginRuntime(
      name: record.name, restarts: record.restarts, lastExit: record.lastExit, store: store, logger: logger)
    let logger = self.logger
    var launcher = self.launcher
    let peers = PluginPeers(plugin: record.name, alsoAdmits: hostAPIAlsoAdmits)
    peers.pid = adopting?.pid
    launcher.onSpawn = { pid in peers.pid = pid }
    let hostAPI = await startHostAPI(record.name, manifest, peers: peers)
    if let hostAPI { launcher.baseEnvironment[HostAPIServer.environmentKey] = hostAPI.path }
    let name = record.name
    switch verification {
    case .unchecked: break
    case .verified(let package):
      manifest = package.relocate(installed)
      launcher.preLaunchCheck = { _ in try package.check(installed, plugin: name) }
    case .refused(let error):
      launcher.preLaunchCheck = { _ in throw error }
    }
    let metrics = self.metrics
    let supervisor = PluginSupervisor(
      manifest: manifest, launcher: launcher, transport: transport, adopting: adopting,
      onShutdown: shutdownBehaviour, logger: logger, observeCalls: metrics.callObserver(plugin: name),
      // An install inside a trace (a deployment's task): its first Start joins it.
      startTrace: InstrumentationContext.current
    ) { event in
      runtime.handle(event)
      metrics.pluginEvent(event)
      logger.info(
        "\(event.event.rawValue)",
        metadata: ["plugin": "\(event.plugin)", "pid": "\(event.pid.map(String.init) ?? "-")"])
    }
    runtime.bind(supervisor)
    let finished = OnceValue<Void>()
    newSupervisor.yield((record.name, supervisor, finished))
    return Entry(
      record: record, manifest: manifest, supervisor: supervisor, runtime: runtime, finished: finished,
      hostAPI: hostAPI, verified: verification.package)
  }

  /// Serves the plugin's Host API; nil (logged) if its socket cannot be
  /// bound: the plugin then runs without it.
  private func startHostAPI(_ name: String, _ manifest: PluginManifest, peers: PluginPeers) async -> HostAPIServer? {
    do {
      try FileManager.default.createDirectory(
        atPath: launcher.paths.runtimeDirectory, withIntermediateDirectories: true,
        attributes: [.posixPermissions: 0o700])
      let owner = try Self.isolationOwner(manifest)
      var actions = HostAPIServer.Actions(
        callPlugin: { target, call in try await self.call(target, call) },
        registerCommand: { command in try await self.registerCommand(command, for: name) },
        unregisterCommand: { command in try await self.commands.unregister(command, for: name) })
      actions.observeCall = metrics.hostAPIObserver(plugin: name)
      return try await HostAPIServer.start(
        path: try launcher.paths.hostAPISocket(name), plugin: name,
        permissions: manifest.permissions, owner: owner, peers: peers, store: store, logger: logger, actions: actions)
    } catch {
      logger.error("plugin \(name): cannot serve its Host API: \(error)")
      return nil
    }
  }

  /// CallPlugin: another plugin's Apply or GetStatus.
  private func call(_ target: String, _ call: Deckhand_Host_V1_CallPluginRequest.OneOf_Call?) async throws
    -> Deckhand_Host_V1_CallPluginResponse
  {
    let entry = try entry(target)
    let timeout = entry.manifest.timeouts.call
    var response = Deckhand_Host_V1_CallPluginResponse()
    switch call {
    case .apply(let payload):
      try await entry.supervisor.withConnection { try await $0.apply(payload, timeout: timeout) }
    case .status(let data):
      let status = try await entry.supervisor.withConnection {
        try await $0.getStatus(data: data.isEmpty ? nil : data, timeout: timeout)
      }
      response.code = Int64(status.code)
      response.results = status.results
    case nil:
      throw DeckhandError(.configurationInvalid, "CallPlugin needs apply or status")
    }
    return response
  }

  // MARK: Commands of plugins on the command socket

  /// RegisterCommand for `plugin` (its permission already checked).
  private func registerCommand(_ name: String, for plugin: String) throws {
    try commands.register(name, for: plugin, forward: forwardCommand)
  }

  /// Whether a stored command may go back on the socket after a restart:
  /// its plugin is installed and its manifest still allows it.
  private func commandAllowed(_ name: String, _ plugin: String) -> Bool {
    entries[plugin]?.manifest.permissions.allowsCommand(name) ?? false
  }

  /// Hands a command's request to its plugin.
  private var forwardCommand: PluginCommandRouter.Forward {
    { [weak self] plugin, request in
      guard let self else { throw DeckhandError(.internalError, "the agent is shutting down") }
      let entry = try await self.entry(plugin)
      return try await entry.supervisor.withConnection { connection in
        try await connection.handleCommand(request, timeout: entry.manifest.timeouts.call)
      }
    }
  }

  /// The user and group a plugin runs as when its manifest switches them
  /// (`uid_t.max` or `gid_t.max` for the one it keeps); nil when it runs as
  /// the agent. Its Host API socket and its verified copy are given to them.
  private static func isolationOwner(_ manifest: PluginManifest) throws -> (uid: uid_t, gid: gid_t)? {
    guard manifest.isolation.user != nil || manifest.isolation.group != nil else { return nil }
    let ids = try PluginLauncher.resolve(manifest.isolation, plugin: manifest.name)
    return (ids.uid >= 0 ? uid_t(ids.uid) : uid_t.max, ids.gid >= 0 ? gid_t(ids.gid) : gid_t.max)
  }

  /// Where signed plugins' verified copies live.
  private var verifiedRoot: String { "\(launcher.paths.stateDirectory)/verified" }

  /// The trust policy's word on a plugin (``Verification``); a signed one
  /// gets its verified copy made (or checked, if it exists).
  private func verification(
    _ manifest: PluginManifest, manifestText: String, signature: String?, reuse: Bool = false
  ) -> Verification {
    guard let trust else { return .unchecked }
    do {
      guard
        let signed = try trust.verify(
          manifestBytes: Array(manifestText.utf8), signature: signature, plugin: manifest.name)
      else { return .unchecked }
      // A plugin run as another user reads its copy through its group.
      let group = try Self.isolationOwner(manifest).flatMap { $0.gid == gid_t.max ? nil : UInt32($0.gid) }
      return .verified(
        try VerifiedPackage.prepare(manifest, signed: signed, root: verifiedRoot, group: group, reuse: reuse))
    } catch {
      return .refused(error)
    }
  }

  private func stop(_ entry: Entry, cleanup: Bool) async {
    entry.supervisor.requestStop(cleanup: cleanup)
    await entry.finished.wait()
    await entry.hostAPI?.close()
  }

  /// Waits for the first health check or the first failure, within the
  /// plugin's start timeout plus one health check.
  private func firstOutcome(_ entry: Entry) async -> Result<Void, DeckhandError> {
    let manifest = entry.manifest
    let limit = manifest.timeouts.start + manifest.timeouts.call + manifest.health.timeout + .seconds(1)
    let runtime = entry.runtime
    return await firstResult(within: limit) { await runtime.firstOutcome.wait() }
      ?? .failure(
        DeckhandError(.startTimeout, "plugin \(manifest.name) was not healthy within \(limit)"))
  }
}
