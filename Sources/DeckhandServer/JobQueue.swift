package import DeckhandCore
package import DeckhandProtocol
internal import DeckhandRuntime
package import Foundation
internal import SwiftProtobuf
internal import Synchronization

/// The job queue: jobs wait in the store until a runner whose identity
/// matches claims one (QUEUED → WAITING), acknowledges it (RUNNING), and
/// ends it (SUCCESS or ERROR). The timeout rules (ack, heartbeats, expiry)
/// run in ``sweep()``; every change wakes whoever watches the job.
package final class JobQueue: Sendable {
  /// The queue's timeouts (Waypoint's defaults).
  package struct Timing: Sendable {
    package var ackTimeout: Duration = .seconds(120)
    package var heartbeatInterval: Duration = .seconds(5)
    package var heartbeatTimeout: Duration = .seconds(120)
    /// Ended jobs, and their output, are deleted this long after they
    /// ended.
    package var retention: Duration = .seconds(7 * 86_400)
    /// The output stored per job, in bytes (64 MiB); past it, output is
    /// cut and the cut is said in the output.
    package var outputLimit: Int64 = 64 << 20
    package init() {}
  }

  package let store: any ServerStore
  package let timing: Timing

  /// What a watcher waits for.
  package enum Topic: Hashable, Sendable {
    /// A job's state or output.
    case job(String)
    /// Config variables changed.
    case config
    /// A job of this runner was asked to stop.
    case cancel(runner: String)
  }
  /// Wake-ups for the job streams, cancels and RunnerConfig.
  package let changes = SignalHub<Topic>()
  /// Runners waiting for a job.
  let waiters = RunnerWaiters()
  /// When ended jobs were last pruned (ms).
  private let lastPrune = Mutex<Int64>(0)
  /// Jobs the server stopped but could not yet store as stopped (the disk
  /// was full): shown as ended (``record(_:)``), stored by the sweep once
  /// writes work again.
  private let unstoredStops = Mutex<[String: (error: String, atMs: Int64)]>([:])
  /// The nodes as last read for a queued job's warning, and when; cleared
  /// when a node joins, changes or is removed here.
  private let warningNodes = Mutex<(at: ContinuousClock.Instant, nodes: [NodeRecord])?>(nil)
  /// Writes failed for lack of storage: heartbeats were lost, so once
  /// writes work again every running job's clock restarts (as after a
  /// server restart) before any heartbeat timeout applies.
  private let storageFailed = Mutex(false)
  /// Runners that take only jobs aimed at them.
  private let byIdOnlyRunners = Mutex<[String: Bool]>([:])
  /// Every config variable, read once after each change (every
  /// assignment needs the ones that apply to its runner).
  /// A read that overlapped a change is not kept (the generation moved).
  private let configCache = Mutex<(generation: Int, variables: [Deckhand_Server_V1_ConfigVariable]?)>((0, nil))

  /// The other replicas (PostgreSQL); nil or unshared: this server alone.
  let bus: ReplicaBus?

  /// What the queue counts for Prometheus.
  let metrics: ServerMetrics

  /// Where job events go (`deckhand events`); nil: nowhere.
  let events: EventLog?

  package init(
    store: any ServerStore, timing: Timing, bus: ReplicaBus? = nil, metrics: ServerMetrics = .off,
    events: EventLog? = nil
  ) {
    self.events = events
    self.metrics = metrics
    self.store = store
    self.timing = timing
    self.bus = bus
  }

  // MARK: Operators

  /// Checks that `job` can be queued.
  ///
  /// - Throws: ``DeckhandError`` `configurationInvalid` saying what is
  ///   wrong with it.
  package func validate(_ job: Deckhand_Server_V1_Job) throws(DeckhandError) {
    func invalid(_ problem: String) -> DeckhandError { DeckhandError(.configurationInvalid, problem) }
    switch job.operation {
    case nil: throw invalid("the job has no operation (exec, plugin_apply, plugin_status or noop)")
    case .exec(let exec):
      if exec.argv.isEmpty || exec.argv[0].isEmpty { throw invalid("exec needs a command (argv)") }
      if exec.timeoutMs < 0 { throw invalid("exec timeout must not be negative") }
    case .pluginApply(let apply):
      if apply.plugin.isEmpty { throw invalid("plugin.apply needs a plugin name") }
    case .pluginStatus(let status):
      if status.plugin.isEmpty { throw invalid("plugin.status needs a plugin name") }
    case .noop: break
    }
    if job.expiresInMs < 0 { throw invalid("expires_in must not be negative") }
  }

  /// Whether a known node could take `job`.
  package func assignable(_ job: Deckhand_Server_V1_Job) async throws -> Bool {
    let target = try await resolveTarget(job.target)
    return try await store.nodes().contains { node in
      RunnerIdentity(id: node.id, name: node.name, labels: node.labels, byIdOnly: byIdOnly(node.id)).accepts(target)
    }
  }

  private func byIdOnly(_ runner: String) -> Bool { byIdOnlyRunners.withLock { $0[runner] ?? false } }

  private func resolveTarget(_ target: Deckhand_Server_V1_JobTarget) async throws -> RunnerWaiters.Target {
    guard case .runnerID(let key) = target.target, !key.isEmpty else {
      return RunnerWaiters.Target(runner: "", labels: target.labels)
    }
    var found = try await store.node(id: key)
    if found == nil { found = try await store.node(named: key) }
    guard let node = found else {
      throw DeckhandError(.notFound, "no runner \(key); `deckhand nodes ls` lists the agents")
    }
    return RunnerWaiters.Target(runner: node.id, labels: target.labels)
  }

  /// Queues `job`; returns its id.
  package func queue(_ job: Deckhand_Server_V1_Job) async throws -> String {
    try await insert(job).id
  }

  /// Queues a job, and says why it may wait long: no node the server
  /// knows matches its target, or only drained ones do. The job is queued
  /// all the same (the node may join later), and waits without holding
  /// up jobs other runners can take.
  package func queueWithWarning(_ job: Deckhand_Server_V1_Job) async throws -> (id: String, warning: String?) {
    let (id, target) = try await insert(job)
    let nodes = try await nodesForWarnings()
    let matching = nodes.filter {
      RunnerIdentity(id: $0.id, name: $0.name, labels: $0.labels, byIdOnly: false).accepts(target)
    }
    let wanted =
      target.runner.isEmpty
      ? (target.labels.isEmpty
        ? "any node"
        : "a node labelled \(target.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))")
      : "node \(target.runner)"
    if matching.isEmpty {
      return (id, "no node known to the server can take job \(id): it wants \(wanted); it waits until one joins")
    }
    if matching.allSatisfy({ $0.availability != .active }) {
      return (
        id,
        "every node that can take job \(id) is drained (\(matching.map(\.name).sorted().joined(separator: ", "))); it waits until one is activated"
      )
    }
    return (id, nil)
  }

  /// The nodes, for ``queueWithWarning(_:)``'s hint: read again after 2 s
  /// or a change here (another replica's changes show within the 2 s), so
  /// queueing jobs quickly on a large fleet does not read every node for
  /// each one (10,000 rows a call at 10,000 nodes).
  private func nodesForWarnings() async throws -> [NodeRecord] {
    let now = ContinuousClock.now
    if let cached = warningNodes.withLock({ $0 }), cached.at.duration(to: now) < .seconds(2) { return cached.nodes }
    let nodes = try await store.nodes()
    warningNodes.withLock { $0 = (now, nodes) }
    return nodes
  }

  /// Stores `job` as QUEUED; returns its id and its resolved target.
  private func insert(_ job: Deckhand_Server_V1_Job) async throws -> (id: String, target: RunnerWaiters.Target) {
    try validate(job)
    let target = try await resolveTarget(job.target)
    var spec = job
    spec.id = ControlPlane.randomText(bytes: 12)
    let now = nowMs()
    let record = JobRecord(
      id: spec.id, spec: try spec.serializedData(), singletonId: job.singletonID, targetRunner: target.runner,
      targetLabels: target.labels, project: job.project, queuedMs: now,
      lifecycle: JobLifecycle(expiresMs: job.expiresInMs > 0 ? now + job.expiresInMs : 0))
    let replaced = try await store.insert(record)
    metrics.jobQueued()
    events?.record(
      FleetEvent(
        atMs: now, kind: .jobQueued, nodeId: target.runner, subject: record.id, message: Self.describe(job)))
    for id in replaced { notify(job: id) }
    announce(target)
    return (record.id, target)
  }

  /// Cancels a job: a queued or waiting one ends at once; a running one is
  /// told to stop and its runner ends it; `force` ends it at once.
  package func cancel(_ id: String, force: Bool) async throws {
    let updated = try await store.update(id) { job in job.lifecycle.cancel(force: force, nowMs: nowMs()) }
    guard let updated else { throw DeckhandError(.notFound, "no job \(id)") }
    notify(job: id)
    if !updated.runnerId.isEmpty { signal(.cancel(runner: updated.runnerId)) }
  }

  package func record(_ id: String) async throws -> JobRecord {
    guard var record = try await store.job(id: id) else {
      throw DeckhandError(.notFound, "no job \(id); `deckhand jobs ls` lists them")
    }
    if let stop = unstoredStops.withLock({ $0[id] }) { record.lifecycle.stop(error: stop.error, nowMs: stop.atMs) }
    return record
  }

  /// The job as the API shows it: its spec with the queue's state on top.
  package func message(_ record: JobRecord) -> Deckhand_Server_V1_Job {
    var job = (try? Deckhand_Server_V1_Job(serializedBytes: record.spec)) ?? Deckhand_Server_V1_Job()
    job.id = record.id
    job.state = Deckhand_Server_V1_JobState(rawValue: record.state.rawValue) ?? .unknown
    job.runnerID = record.runnerId
    job.queuedMs = record.queuedMs
    job.assignedMs = record.assignedMs
    job.ackedMs = record.ackedMs
    job.completeMs = record.completeMs
    job.exitCode = Int32(record.exitCode)
    job.error = record.error
    job.cancelRequested = record.cancelRequested
    job.resultCode = record.resultCode
    job.results = record.results
    return job
  }

  // MARK: Runners

  /// Records whether a runner takes only jobs aimed at it.
  package func register(runner: String, byIdOnly: Bool) {
    byIdOnlyRunners.withLock { $0[runner] = byIdOnly }
  }

  package func identity(of runner: String) async throws -> RunnerIdentity {
    guard let identity = try await store.runnerIdentity(id: runner, byIdOnly: byIdOnly(runner)) else {
      throw Self.unknown(runner: runner)
    }
    return identity
  }

  static func unknown(runner: String) -> DeckhandError {
    DeckhandError(.notFound, "runner \(runner) is not a known node; join the agent again")
  }

  /// Waits for a job `runner` may take and assigns it (WAITING); the job,
  /// and the runner as it was matched.
  package func claim(for runner: String) async throws -> (JobRecord, RunnerIdentity) {
    while true {
      try Task.checkCancellation()
      try checkOpen()
      let generation = waiters.generation
      guard let claim = try await store.claim(runner: runner, byIdOnly: byIdOnly(runner), now: nowMs()) else {
        throw Self.unknown(runner: runner)
      }
      if let job = claim.job {
        metrics.jobAssigned(job)
        events?.record(
          FleetEvent(
            atMs: job.lifecycle.assignedMs, kind: .jobAssigned, nodeId: claim.runner.id,
            nodeName: claim.runner.name, subject: job.id))
        notify(job: job.id)
        // Another job waits: pass the wake-up on.
        if let next = claim.next { announce(next) }
        return (job, claim.runner)
      }
      // Woken by a job for this runner, or every second (jobs queued by
      // another server on the same store, expiry).
      await waiters.wait(claim.runner, since: generation, timeout: .seconds(1))
    }
  }

  /// The runner acknowledged: RUNNING.
  package func ack(_ id: String, runner: String) async throws -> JobRecord {
    let now = nowMs()
    let job = try await store.update(id) { job in
      do {
        try job.lifecycle.acknowledge(by: runner, nowMs: now)
      } catch {
        throw DeckhandError(
          .configurationInvalid, "job \(id) is not waiting for this runner (state \(job.state.rawValue))")
      }
    }
    guard let job else {
      throw DeckhandError(.configurationInvalid, "job \(id) is not waiting for this runner (it no longer exists)")
    }
    notify(job: id)
    return job
  }

  /// A runner that never acknowledged: the job is queued again.
  package func requeue(_ id: String, runner: String) async {
    let job = try? await store.update(id) { job in job.lifecycle.requeue(from: runner) }
    notify(job: id)
    if let job, job.state == .queued {
      announce(RunnerWaiters.Target(runner: job.targetRunner, labels: job.targetLabels))
    }
  }

  /// A runner picks a running job up again after a reconnect.
  /// A runner asks to go on with `id` on a new stream: true if it may
  /// (the job is its own and still running; its heartbeat clock starts
  /// again), false if the job is its own but ended while it was away
  /// (force-cancelled, timed out): the runner must then stop it, and what
  /// it sends for it is dropped.
  ///
  /// - Throws: ``DeckhandError`` `configurationInvalid` if the job is not
  ///   this runner's (never was, or was queued again and moved) or does
  ///   not exist; the runner then stops its process and frees that slot.
  package func resume(_ id: String, runner: String) async throws -> Bool {
    let job = try await store.job(id: id)
    guard let job, job.runnerId == runner else {
      throw DeckhandError(
        .configurationInvalid,
        "job \(id) cannot be resumed by this runner (\(job == nil ? "there is no such job" : "it is not this runner's"))"
      )
    }
    guard job.lifecycle.canResume(by: runner) else { return false }
    await heartbeat(id)
    return true
  }

  package func heartbeat(_ id: String) async {
    do { _ = try await store.update(id) { job in job.lifecycle.heartbeat(nowMs: nowMs()) } } catch {
      noteStorageFailure(error)
    }
  }

  /// Stores a page of a job's output. When the disk cannot take it, the
  /// job is stopped, saying so (in memory until that too can be stored),
  /// and false is returned: the caller drops the job's further output.
  package func appendOutput(_ id: String, runner: String, _ events: [Deckhand_Server_V1_OutputEvent]) async throws
    -> Bool
  {
    guard !events.isEmpty else { return true }
    do {
      _ = try await store.appendOutput(
        id, events.map { JobOutputEvent(kind: $0.kind.rawValue, data: $0.data, timestampMs: $0.timestampMs) },
        limit: timing.outputLimit)
    } catch let error as DeckhandError where StorageFailure.isStorageFailure(error) {
      noteStorageFailure(error)
      let message = "stopped: its output could not be stored (\(error.message))"
      let now = nowMs()
      do { _ = try await store.update(id) { $0.lifecycle.stop(error: message, nowMs: now) } } catch {
        unstoredStops.withLock { $0[id] = (message, now) }
      }
      notify(job: id)
      signal(.cancel(runner: runner))
      return false
    }
    notify(job: id)
    return true
  }

  private func noteStorageFailure(_ error: any Error) {
    if StorageFailure.isStorageFailure(error) { storageFailed.withLock { $0 = true } }
  }

  /// The runner ended the job. Idempotent: a result delivered again, or
  /// for a job that ended otherwise (cancelled, timed out) or is not this
  /// runner's, changes nothing. Returns whether this result was recorded.
  @discardableResult
  package func finish(
    _ id: String, runner: String, exitCode: Int32, error: String?, resultCode: Int64 = 0, results: [String] = []
  ) async throws -> Bool {
    // Stopped here but not yet stored: the result changes nothing (as for
    // any ended job), and needs no write.
    if unstoredStops.withLock({ $0[id] }) != nil { return false }
    let now = nowMs()
    let recorded = RecordedFlag()
    let stored = try await store.update(id) { job in
      // A store may run the change again after losing a race: the last
      // run is the one written.
      recorded.set(
        job.lifecycle.finish(
          by: runner, exitCode: Int(exitCode), error: error, resultCode: resultCode, results: results, nowMs: now))
    }
    if recorded.value, let stored { ended(stored) }
    notify(job: id)
    return recorded.value
  }

  /// Counts a job whose end this replica recorded, and says so in the
  /// fleet's events.
  private func ended(_ job: JobRecord) {
    metrics.jobFinished(job)
    events?.record(Self.finished(job))
  }

  /// A job's end as an event: its outcome, exit code and error.
  static func finished(_ job: JobRecord) -> FleetEvent {
    let life = job.lifecycle
    var message = life.state == .success ? "success" : "error"
    if life.exitCode != 0 { message += ", exit code \(life.exitCode)" }
    if !life.error.isEmpty { message += ": \(life.error)" }
    return FleetEvent(
      atMs: life.completeMs, kind: .jobFinished, nodeId: life.runnerId, subject: job.id, message: message)
  }

  /// What a queued job is, in a few words.
  static func describe(_ job: Deckhand_Server_V1_Job) -> String {
    switch job.operation {
    case .exec(let exec): "exec " + String(exec.argv.prefix(8).joined(separator: " ").prefix(200))
    case .pluginApply(let apply): "apply to \(apply.plugin)"
    case .pluginStatus(let status): "status of \(status.plugin)"
    case .noop: "noop"
    case nil: "job"
    }
  }

  /// Whether an update's closure recorded a result (the closure is
  /// Sendable and escapes; a Mutex cannot be captured by it).
  private final class RecordedFlag: Sendable {
    private let flag = Mutex(false)
    func set(_ value: Bool) { flag.withLock { $0 = value } }
    var value: Bool { flag.withLock { $0 } }
  }

  // MARK: Watching

  func notify(job id: String) { signal(.job(id)) }

  /// Signals `topic` here, and on the other replicas.
  package func signal(_ topic: Topic) {
    changes.signal(topic)
    guard let bus, bus.isShared else { return }
    switch topic {
    case .job(let id): bus.publish(.job(id))
    case .config:
      configCache.withLock { $0 = ($0.generation + 1, nil) }
      bus.publish(.config)
    case .cancel(let runner): bus.publish(.cancel(runner: runner))
    }
  }

  /// Wakes a waiting runner that may take a job for `target`, here or on
  /// another replica.
  func announce(_ target: RunnerWaiters.Target) {
    waiters.announce(target)
    bus?.publish(.queued(runner: target.runner, labels: target.labels))
  }

  /// Wakes every waiting runner, here and on the other replicas.
  func announceAll() {
    waiters.announceAll()
    bus?.publish(.queuedAny)
  }

  /// What another replica changed: watchers and runners here wake.
  package func received(_ event: ReplicaEvent) {
    switch event {
    case .job(let id): changes.signal(.job(id))
    case .config:
      configCache.withLock { $0 = ($0.generation + 1, nil) }
      changes.signal(.config)
    case .cancel(let runner): changes.signal(.cancel(runner: runner))
    case .queued(let runner, let labels): waiters.announce(RunnerWaiters.Target(runner: runner, labels: labels))
    case .queuedAny: waiters.announceAll()
    case .restored: stateRestored()
    case .assignments, .removed, .reconcile, .resync: break
    }
  }

  /// A removed node's unfinished jobs changed (queued again, or ended):
  /// their followers look, and runners that could take them do.
  package func released(_ jobs: [JobRecord]) {
    warningNodes.withLock { $0 = nil }
    for job in jobs { notify(job: job.id) }
    if jobs.contains(where: { $0.state == .queued }) { announceAll() }
  }

  /// The store's state was replaced: cached config is read again, and
  /// every waiting runner looks at the queue.
  package func stateRestored() {
    configCache.withLock { $0 = ($0.generation + 1, nil) }
    changes.signal(.config)
    waiters.announceAll()
  }

  /// A node's labels changed: its waiting runners look at the queue again
  /// (jobs for its new labels may be waiting).
  package func nodeChanged(_ nodeId: String) {
    warningNodes.withLock { $0 = nil }
    announce(RunnerWaiters.Target(runner: nodeId, labels: [:]))
  }

  /// Ack, heartbeat and expiry rules; and, at most once a minute (or
  /// once a tenth of a short retention), deletes jobs that ended longer
  /// ago than the retention.
  package func sweep() async throws {
    let now = nowMs()
    if storageFailed.withLock({ $0 }) {
      try await store.restartHeartbeats(nowMs: now)
      storageFailed.withLock { $0 = false }
    }
    for (id, stop) in unstoredStops.withLock({ $0 }) {
      _ = try await store.stop(id, error: stop.error, nowMs: stop.atMs)
      unstoredStops.withLock { _ = $0.removeValue(forKey: id) }
      notify(job: id)
    }
    let changed = try await store.expire(
      now: now, ackTimeoutMs: Int64(timing.ackTimeout.inMilliseconds),
      heartbeatTimeoutMs: Int64(timing.heartbeatTimeout.inMilliseconds))
    for job in changed {
      if job.lifecycle.state.isEnded { ended(job) }
      notify(job: job.id)
      // A running job that timed out: its runner, if it still follows
      // it, is told to stop it.
      if job.state.isEnded && !job.runnerId.isEmpty { signal(.cancel(runner: job.runnerId)) }
    }
    if changed.contains(where: { $0.state == .queued }) { announceAll() }
    let retention = Int64(timing.retention.inMilliseconds)
    let due = lastPrune.withLock { last -> Bool in
      guard now - last >= min(60_000, retention / 10) else { return false }
      last = now
      return true
    }
    if due { _ = try await store.prune(endedBefore: now - retention) }
  }

  /// Whether ``close()`` was called.
  package var isClosed: Bool { changes.isClosed }

  func checkOpen() throws {
    if isClosed { throw DeckhandError(.serverUnavailable, "the server is shutting down") }
  }

  /// Ends every wait (server shutdown).
  package func close() {
    changes.close()
    waiters.close()
  }

  // MARK: Config variables

  package func setConfig(_ variables: [Deckhand_Server_V1_ConfigVariable]) async throws {
    for variable in variables where variable.name.isEmpty {
      _ = variable
      throw DeckhandError(.configurationInvalid, "a config variable needs a name")
    }
    try await store.setConfig(
      variables.map { ConfigRecord(scope: $0.scope.rawValue, target: $0.target, name: $0.name, value: $0.value) })
    configCache.withLock { $0 = ($0.generation + 1, nil) }
    signal(.config)
  }

  package func config(prefix: String) async throws -> [Deckhand_Server_V1_ConfigVariable] {
    try await store.config(prefix: prefix).map { record in
      var variable = Deckhand_Server_V1_ConfigVariable()
      variable.scope = Deckhand_Server_V1_ConfigVariable.Scope(rawValue: record.scope) ?? .server
      variable.target = record.target
      variable.name = record.name
      variable.value = record.value
      return variable
    }
  }

  /// The variables that apply to `runner` (and a job's `project`), the
  /// narrower scope winning: server, project, target (node), runner.
  package func variables(for runner: RunnerIdentity, project: String?) async throws
    -> [Deckhand_Server_V1_ConfigVariable]
  {
    let all: [Deckhand_Server_V1_ConfigVariable]
    let (generation, cached) = configCache.withLock { $0 }
    if let cached {
      all = cached
    } else {
      all = try await config(prefix: "")
      configCache.withLock { if $0.generation == generation { $0.variables = all } }
    }
    var chosen: [String: Deckhand_Server_V1_ConfigVariable] = [:]
    for scope in [Deckhand_Server_V1_ConfigVariable.Scope.server, .project, .target, .runner] {
      for variable in all where variable.scope == scope {
        let applies =
          switch scope {
          case .server: true
          case .project: project != nil && variable.target == project
          case .target: variable.target == runner.id || variable.target == runner.name
          case .runner: variable.target == "*" || variable.target == runner.id || variable.target == runner.name
          default: false
          }
        if applies { chosen[variable.name] = variable }
      }
    }
    return chosen.values.sorted { $0.name < $1.name }
  }
}
