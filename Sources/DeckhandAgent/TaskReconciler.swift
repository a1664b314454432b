internal import Crypto
internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandPluginHost
internal import DeckhandProtocol
internal import DeckhandRuntime
internal import DeckhandTelemetry
internal import Foundation
internal import GRPCCore
internal import Logging
internal import Synchronization
internal import Tracing

/// Makes the node run what the server assigned: downloads and checks each
/// task's package, installs or upgrades its plugin through the
/// ``PluginManager`` (with its rollback), removes plugins the server no
/// longer assigns, and reports each task's state. Plugins the server did
/// not install are never touched.
///
/// Task states are kept in the agent's database, so a new session can
/// send them all again.
final class TaskReconciler: Sendable {
  private let manager: PluginManager
  private let store: AgentStore
  private let membership: ServerMembership
  /// The replicas; downloads go to the current one.
  private let servers: ServerList
  private var endpoint: ServerEndpoint { servers.current }
  private let stateDirectory: String
  private let logger: Logger
  /// The assignments the server sent, checked link by link.
  private let assignments = Mutex(AssignmentChain.Receiver<Deckhand_Dispatcher_V1_Task>())
  private let wake: AsyncStream<Void>.Continuation
  private let wakes: AsyncStream<Void>
  private let packageLimits: PackageArchive.Limits
  /// The current session's stream of status changes, if one is open.
  private let outbox = Mutex<AsyncStream<Deckhand_Dispatcher_V1_TaskStatus>.Continuation?>(nil)

  init(
    manager: PluginManager, store: AgentStore, membership: ServerMembership, servers: ServerList,
    stateDirectory: String, packageLimits: PackageArchive.Limits = PackageArchive.Limits(), logger: Logger
  ) {
    self.packageLimits = packageLimits
    self.manager = manager
    self.store = store
    self.membership = membership
    self.servers = servers
    self.stateDirectory = stateDirectory
    self.logger = logger
    (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
  }

  /// For a new session: every state known now, and a stream of the
  /// changes from here on (the previous session's stream ends).
  func subscribe() throws -> ([Deckhand_Dispatcher_V1_TaskStatus], AsyncStream<Deckhand_Dispatcher_V1_TaskStatus>) {
    let (stream, continuation) = AsyncStream.makeStream(of: Deckhand_Dispatcher_V1_TaskStatus.self)
    let previous = outbox.withLock { current in
      defer { current = continuation }
      return current
    }
    previous?.finish()
    return (try allStatuses(), stream)
  }

  /// Every task state the agent knows, for a new session.
  func allStatuses() throws -> [Deckhand_Dispatcher_V1_TaskStatus] {
    try store.serverTasks().map { task in
      var status = Deckhand_Dispatcher_V1_TaskStatus()
      status.taskID = task.taskId
      status.state = Deckhand_Dispatcher_V1_TaskState(rawValue: task.state.rawValue) ?? .new
      status.message = task.message
      return status
    }
  }

  /// A new assignments stream opened: it must start with a COMPLETE.
  func streamOpened() {
    assignments.withLock { $0.streamOpened() }
  }

  /// Applies one assignments message. Returns false when it does not
  /// follow from the last one (the stream must be opened again).
  func apply(_ message: Deckhand_Dispatcher_V1_AssignmentsMessage) -> Bool {
    let ok = assignments.withLock { $0.receive(AssignmentChain.Message(message)) }
    if ok { wake.yield() }
    return ok
  }

  /// How long after a pass with a transient failure the next one runs.
  static let retryBackoff = RestartBackoff(initial: .seconds(1), maximum: .seconds(60))

  /// Converges after every change, one pass at a time, until cancelled.
  /// A pass in which a task failed for a transient reason (``TransientFailure``)
  /// is followed by another after a backoff.
  func run() async {
    await withDiscardingTaskGroup { group in
      var failedPasses = 0
      for await _ in wakes {
        guard let tasks = assignments.withLock({ $0.desired }) else { continue }
        guard await converge(tasks) else {
          failedPasses = 0
          continue
        }
        let delay = Self.retryBackoff.delay(attempt: failedPasses, random: .random(in: 0..<1))
        failedPasses += 1
        group.addTask { [wake] in
          try? await Task.sleep(for: delay)
          wake.yield()
        }
      }
      group.cancelAll()
    }
  }

  func finish() {
    wake.finish()
    outbox.withLock { $0?.finish() }
  }

  /// What an installed plugin was made from.
  static func spec(_ task: Deckhand_Dispatcher_V1_Task) -> String {
    "\(task.plugin)@\(task.version)#\(task.artifactDigest)#\(task.configJson)"
  }

  /// One pass; true if a task failed for a transient reason (and is to be
  /// tried again).
  private func converge(_ tasks: [String: Deckhand_Dispatcher_V1_Task]) async -> Bool {
    var retry = false
    let known = (try? store.serverTasks()) ?? []
    // One task per plugin: the newest.
    var byPlugin: [String: Deckhand_Dispatcher_V1_Task] = [:]
    for task in tasks.values where (byPlugin[task.plugin]?.updatedMs ?? -1) < task.updatedMs {
      byPlugin[task.plugin] = task
    }
    let managed = Set(known.filter(\.installed).map(\.plugin))

    // Plugins the server no longer assigns.
    for record in known where tasks[record.taskId] == nil {
      if record.installed && byPlugin[record.plugin] != nil {
        // Replaced by a task not installed yet: the record stays with the
        // plugin that runs, which remains the server's (a replacement that
        // fails leaves it running, and a rollback to it finds it here).
        continue
      }
      if record.installed {
        do {
          try await manager.remove(record.plugin, cleanup: false)
          logger.info("plugin removed: no longer assigned", metadata: ["plugin": "\(record.plugin)"])
        } catch {
          logger.warning("removing \(record.plugin) failed: \(error)")
        }
      }
      try? store.deleteServerTask(record.taskId)
    }

    for task in byPlugin.values.sorted(by: { $0.plugin < $1.plugin }) {
      let spec = Self.spec(task)
      if let record = known.first(where: { $0.taskId == task.id }),
        record.state == .failed || (record.installed && record.spec == spec && record.state == .running)
      {
        continue  // done (or failed: a new task is needed to try again)
      }
      let installedLocally = await manager.all.contains { $0.record.name == task.plugin }
      if installedLocally && !managed.contains(task.plugin) {
        report(task, .failed, "a plugin named \(task.plugin) was installed on this node by hand; it is left alone")
        continue
      }
      if let same = known.first(where: { $0.plugin == task.plugin && $0.installed && $0.spec == spec }),
        installedLocally
      {
        // The same package and config under a new task id (after a
        // server restore, say): nothing to do.
        try? store.deleteServerTask(same.taskId)
        report(task, .running, "already running", installed: true)
        continue
      }
      let failedTransiently = await traced(task) {
        report(task, .accepted, "")
        do {
          report(task, .preparing, "downloading \(task.artifactDigest.prefix(12))")
          let manifest = try await prepare(task)
          report(task, .starting, "installing")
          _ = try await manager.install(manifestPath: manifest)
          for other in known where other.plugin == task.plugin && other.taskId != task.id && other.installed {
            var replaced = other
            replaced.installed = false
            try? store.saveServerTask(replaced)
          }
          report(task, .running, "", installed: true)
        } catch {
          let message = (error as? DeckhandError)?.message ?? "\(error)"
          if TransientFailure.isTransient(error) {
            logger.warning("task will be tried again", metadata: ["plugin": "\(task.plugin)", "error": "\(message)"])
            report(task, .preparing, "will try again: \(message)")
            return true
          } else {
            logger.error("task failed", metadata: ["plugin": "\(task.plugin)", "error": "\(message)"])
            report(task, .failed, message)
          }
        }
        return false
      }
      if failedTransiently { retry = true }
    }
    return retry
  }

  /// Runs `body` (one task's convergence) in a span that continues the
  /// trace of the call that made the task's deployment, when it has one:
  /// the download, the install and the plugin's first Start join the
  /// operator's trace.
  private func traced(_ task: Deckhand_Dispatcher_V1_Task, _ body: () async -> Bool) async -> Bool {
    guard let parent = TraceCarrier.context(from: task.traceContext) else { return await body() }
    return await withSpan("task \(task.plugin)", context: parent, ofKind: .consumer) { span in
      span.attributes["deckhand.task.id"] = task.id
      span.attributes["deckhand.plugin.version"] = task.version
      return await body()
    }
  }

  private func report(
    _ task: Deckhand_Dispatcher_V1_Task, _ state: TaskState, _ message: String, installed: Bool? = nil
  ) {
    let previous = (try? store.serverTasks())?.first { $0.taskId == task.id }
    let record = AgentStore.ServerTask(
      taskId: task.id, plugin: task.plugin, spec: Self.spec(task), state: state, message: message,
      installed: installed ?? previous?.installed ?? false)
    try? store.saveServerTask(record)
    var status = Deckhand_Dispatcher_V1_TaskStatus()
    status.taskID = task.id
    status.state = Deckhand_Dispatcher_V1_TaskState(rawValue: state.rawValue) ?? .failed
    status.message = message
    _ = outbox.withLock { $0?.yield(status) }
  }

  /// Downloads (unless cached), checks and unpacks the task's package;
  /// returns the manifest to install (with the task's config, if any).
  private func prepare(_ task: Deckhand_Dispatcher_V1_Task) async throws -> String {
    let digest = task.artifactDigest
    guard digest.count == 64, digest.allSatisfy(\.isHexDigit) else {
      throw DeckhandError(.manifestInvalid, "the task names no valid artifact digest")
    }
    let folder = "\(stateDirectory)/artifacts"
    let directory = "\(folder)/\(digest)"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    // The folder appears only once a package is wholly unpacked
    // (PackageArchive renames it into place), so one that exists is whole.
    if !FileManager.default.fileExists(atPath: directory) {
      let archive = "\(folder)/\(digest).tar.gz"
      try await download(digest, to: archive)
      let limits = packageLimits
      try await BlockingWork.run {
        defer { try? FileManager.default.removeItem(atPath: archive) }
        try ArtifactPackage.unpack(archive, into: directory, limits: limits)
      }
    }
    let manifestPath = "\(directory)/plugin.json"
    let packaged = try await BlockingWork.run { try PluginManifest.load(path: manifestPath) }
    guard packaged.name == task.plugin else {
      throw DeckhandError(
        .manifestInvalid,
        "the package's plugin.json names plugin \"\(packaged.name)\", but the deployment is for \"\(task.plugin)\"")
    }
    guard !task.configJson.isEmpty else { return manifestPath }
    guard let data = FileManager.default.contents(atPath: "\(directory)/plugin.json"),
      case .object(var manifest) = try JSONValue.parse(Array(data)),
      case .object(let config) = try JSONValue.parse(Array(task.configJson.utf8)),
      let bytes = JSONValue.object(manifest.merging(["config": .object(config)]) { $1 }).serialized()
    else {
      throw DeckhandError(.manifestInvalid, "cannot apply the deployment's config to the package's plugin.json")
    }
    manifest = [:]
    let name =
      "plugin.config-\(HexText.encode(SHA256.hash(data: Array(task.configJson.utf8)).prefix(6))).json"
    let path = "\(directory)/\(name)"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
  }

  /// Streams the artifact into `path`, checking its SHA-256.
  private func download(_ digest: String, to path: String) async throws {
    let partial = "\(path).part"
    _ = FileManager.default.createFile(atPath: partial, contents: nil)
    guard let handle = FileHandle(forWritingAtPath: partial) else {
      throw DeckhandError(
        .configurationInvalid,
        "cannot write \(partial) to download the package: \(String(cString: strerror(errno))); check the free space and permissions of \(stateDirectory)"
      )
    }
    let actual: String
    do {
      // Inside the task's span (when traced), the download is a child span
      // and the server's span for it joins the deployment's trace.
      actual = try await ControlPlaneClient.withClient(
        endpoint, caPEM: membership.caPEM, interceptors: [ClientTracingInterceptor()]
      ) { client in
        var request = Deckhand_Dispatcher_V1_DownloadArtifactRequest()
        request.digest = digest
        return try await Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client).downloadArtifact(
          request, metadata: ControlPlaneClient.metadata(membership.credential),
          options: ControlPlaneClient.options(.seconds(300))
        ) { response in
          var hasher = SHA256()
          for try await chunk in response.messages {
            hasher.update(data: chunk.data)
            let data = chunk.data
            try await BlockingWork.run {
              do { try handle.write(contentsOf: data) } catch {
                throw StorageFailure.describe(error, directory: (partial as NSString).deletingLastPathComponent)
              }
            }
          }
          return HexText.encode(hasher.finalize())
        }
      }
      try handle.close()
    } catch {
      try? handle.close()
      try? FileManager.default.removeItem(atPath: partial)
      throw ControlPlaneClient.describe(error, endpoint: endpoint)
    }
    guard actual == digest else {
      try? FileManager.default.removeItem(atPath: partial)
      throw DeckhandError(.checksumMismatch, "the downloaded package's SHA-256 is \(actual), not \(digest)")
    }
    try? FileManager.default.removeItem(atPath: path)
    try FileManager.default.moveItem(atPath: partial, toPath: path)
  }
}
