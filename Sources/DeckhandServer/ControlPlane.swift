internal import Crypto
internal import DeckhandClient
package import DeckhandCore
package import DeckhandProtocol
internal import DeckhandRuntime
internal import DeckhandTelemetry
package import Foundation
package import Logging
internal import Synchronization

/// The server's brain: who is calling (tokens and node credentials), which
/// nodes are up (sessions and heartbeats), and what each node must run
/// (deployments turned into tasks, rolled out node by node). The gRPC
/// services are thin layers over it.
///
/// State that changes on every heartbeat stays in memory behind a
/// `Mutex`; everything else is in the ``ServerStore`` first.
package final class ControlPlane: Sendable {
  package let store: any ServerStore
  /// The other replicas (PostgreSQL); nil: this server alone.
  let bus: ReplicaBus?
  /// Whether this replica does the work that runs once; nil: always.
  let leadership: Leadership?
  /// Whether this replica leads now.
  package var isLeader: Bool { leadership?.isLeader ?? true }
  /// What the server counts for Prometheus (``ServerMetrics/off`` without
  /// `--metrics-listen`).
  package let metrics: ServerMetrics
  /// The fleet's events (`deckhand events`).
  package let events: EventLog
  package let authority: CertificateAuthority
  package let timing: ControlPlaneTiming
  package let artifactsDirectory: String
  /// The replicas agents are told of (the session's managers list),
  /// read from the store every few seconds (``refreshReplicas(id:address:)``).
  package var managers: [String] { managerList.withLock { $0 } }
  private let managerList: Mutex<[String]>
  /// Signalled (key 0) when ``managers`` changes: sessions send the new list.
  package let managerChanges = SignalHub<Int>()
  let logger: Logger
  /// Wakes a node's assignment streams when its tasks may have changed.
  package let assignmentChanges = SignalHub<String>()
  /// Signals a node's id when an operator removed it: every stream the
  /// node holds ends (``whileJoined(_:_:)``).
  let removals = SignalHub<String>()

  struct State {
    var liveness: NodeLiveness
    /// Per node: the open Session stream, ended when a new one replaces it.
    var sessions: [String: (id: String, end: AsyncStream<Void>.Continuation)] = [:]
    var limiter: SessionRateLimiter
    /// Node id → hash of its credential's secret.
    var nodeCredentials: [String: String] = [:]
    /// Node id → name, of nodes an operator removed.
    var removedNodes: [String: String] = [:]
    /// When the leader last looked for nodes no replica holds (ms).
    var lastStaleSweepMs: Int64 = 0
    /// Node ids the store did not know, and when it was asked.
    var unknownNodes: [String: ContinuousClock.Instant] = [:]
    /// Tokens read recently (every operator call names one). This server's
    /// own changes update it at once; an entry is read again after
    /// ``tokenCacheLifetime``, for changes made by another server on the
    /// same store.
    /// Unknown ids are kept too (nil), so that calls with made-up tokens
    /// do not each cost a database read.
    var tokens: [String: (record: TokenRecord?, read: ContinuousClock.Instant)] = [:]
    /// Status changes not stored yet, per node: nodes that came back to
    /// life (heartbeats never wait for the store), and what a sweep could
    /// not store (the disk was full). The next sweep stores them.
    var unsavedStatus: [String: NodeLiveness.StatusChange] = [:]
    /// What each node's plugins use, as its last heartbeat here said
    /// (checked), and when.
    var usage: [String: (plugins: [PluginUsage], atMs: Int64)] = [:]
    /// Reports not yet stored; stored at most every
    /// ``NodeLiveness/persistIntervalMs`` (when `usageStoredMs` is older).
    var unsavedUsage: Set<String> = []
    var usageStoredMs: Int64 = 0
    /// Node names by id, for the events of nodes whose record is not at
    /// hand (a heartbeat, a sweep).
    var names: [String: String] = [:]
  }

  static let tokenCacheLifetime: Duration = .seconds(5)

  private let state: Mutex<State>
  private let reconcileSignal: AsyncStream<Void>.Continuation
  private let reconcileRequests: AsyncStream<Void>

  package init(
    store: any ServerStore, authority: CertificateAuthority, timing: ControlPlaneTiming, artifactsDirectory: String,
    advertisedAddresses: [String], logger: Logger, bus: ReplicaBus? = nil, leadership: Leadership? = nil,
    metrics: ServerMetrics = .off, eventRetention: Duration = .seconds(7 * 86_400)
  ) async throws {
    self.metrics = metrics
    self.events = EventLog(store: store, retention: eventRetention, logger: logger)
    self.bus = bus
    self.leadership = leadership
    self.store = store
    self.authority = authority
    self.timing = timing
    self.artifactsDirectory = artifactsDirectory
    managerList = Mutex(advertisedAddresses)
    self.logger = logger
    var initial = State(liveness: NodeLiveness(timing: timing), limiter: SessionRateLimiter(timing: timing))
    for node in try await store.nodes() { initial.nodeCredentials[node.id] = node.credentialHash }
    for node in try await store.removedNodes() { initial.removedNodes[node.id] = node.name }
    state = Mutex(initial)
    (reconcileRequests, reconcileSignal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    try FileManager.default.createDirectory(atPath: artifactsDirectory, withIntermediateDirectories: true)
  }

  // MARK: Credentials

  /// SHA-256 of a secret, hex: what the store keeps.
  package static func hash(_ secret: String) -> String {
    HexText.encode(SHA256.hash(data: Array(secret.utf8)))
  }

  /// A random secret or id of `bytes` random bytes, as base-62-ish text.
  package static func randomText(bytes: Int = 24) -> String {
    let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    var generator = SystemRandomNumberGenerator()
    return String((0..<bytes).map { _ in alphabet[Int(generator.next(upperBound: UInt32(alphabet.count)))] })
  }

  /// Creates a token of `role`; returns its record and its text (shown
  /// once).
  package func createToken(
    role: TokenRole, ttl: Duration?, description: String, labels: [String: String] = [:],
    allowedLabelKeys: [String] = []
  ) async throws -> (TokenRecord, String) {
    if role != .worker && role.sessionOf == nil && (!labels.isEmpty || !allowedLabelKeys.isEmpty) {
      throw DeckhandError(
        .configurationInvalid, "labels belong to worker join tokens, not to \(role.rawValue) tokens")
    }
    for (key, value) in labels {
      if let problem = LabelRule.problem(key: key, value: value) { throw DeckhandError(.configurationInvalid, problem) }
    }
    for key in allowedLabelKeys {
      if let problem = LabelRule.problem(key: key, value: "") { throw DeckhandError(.configurationInvalid, problem) }
    }
    let id = Self.randomText(bytes: 10)
    let secret = Self.randomText(bytes: 32)
    let now = nowMs()
    let record = TokenRecord(
      id: id, role: role, secretHash: Self.hash(secret), createdMs: now,
      expiresMs: ttl.map { now + Int64($0.inMilliseconds.rounded()) } ?? 0, revoked: false, description: description,
      labels: labels, allowedLabelKeys: allowedLabelKeys.sorted())
    try await store.save(record)
    state.withLock { $0.tokens[id] = (record, .now) }
    return (record, Credential.token(caDigest: authority.digest, id: id, secret: secret).text)
  }

  /// Revokes a token by id; with `removingNodes`, also removes every node
  /// that joined with it (``removeNode(_:)``), and returns them.
  package func revokeToken(id: String, removingNodes: Bool = false) async throws -> [NodeRemoval] {
    guard var token = try await store.token(id: id) else {
      throw DeckhandError(.notFound, "no token \(id); `deckhand tokens list` shows them")
    }
    token.revoked = true
    try await store.save(token)
    state.withLock { $0.tokens[id] = (token, .now) }
    logger.info("token revoked", metadata: ["token": "\(id)"])
    guard removingNodes else { return [] }
    var removals: [NodeRemoval] = []
    for node in try await store.nodes() where node.joinTokenId == id { removals.append(try await removeNode(node.id)) }
    return removals
  }

  /// The token `id`, from the cache while it is fresh.
  package func token(id: String) async throws -> TokenRecord? {
    let now = ContinuousClock.now
    if let cached = state.withLock({ $0.tokens[id] }), cached.read.duration(to: now) < Self.tokenCacheLifetime {
      return cached.record
    }
    let record = try await store.token(id: id)
    state.withLock { state in
      if state.tokens.count > 10_000 { state.tokens = [:] }
      state.tokens[id] = (record, now)
    }
    return record
  }

  /// Who `authorization` (`Bearer …`) names.
  ///
  /// - Throws: ``DeckhandError`` `tokenInvalid` saying why (malformed,
  ///   another server's, unknown, wrong secret, expired, revoked).
  package func authenticate(_ authorization: String?) async throws -> Principal {
    guard let authorization, authorization.hasPrefix("Bearer ") else {
      throw DeckhandError(
        .tokenInvalid, "no token: pass --token (or DECKHAND_TOKEN), or join the agent with --join-token")
    }
    let credential = try Credential.parse(String(authorization.dropFirst(7)))
    switch credential {
    case .node(let id, let secret):
      var (known, removedName) = state.withLock { ($0.nodeCredentials[id], $0.removedNodes[id]) }
      if known == nil && removedName == nil {
        (known, removedName) = try await storedCredential(of: id)
      }
      if let removedName {
        throw DeckhandError(
          .tokenInvalid,
          "node \(removedName) (\(id)) was removed from the fleet by an operator; "
            + "to bring this machine back, clear the agent's state and join it again with a join token")
      }
      guard let known, Self.constantTimeEqual(known, Self.hash(secret)) else {
        throw DeckhandError(.tokenInvalid, "unknown node credential; join the agent again with a join token")
      }
      return .node(id: id)
    case .token(let digest, let id, let secret):
      guard digest == authority.digest else {
        throw DeckhandError(
          .tokenInvalid, "the token was made by another server (its CA digest does not match this server's)")
      }
      guard let token = try await token(id: id), Self.constantTimeEqual(token.secretHash, Self.hash(secret)) else {
        throw DeckhandError(.tokenInvalid, "unknown token \(id)")
      }
      if let refusal = token.refusal(atMs: nowMs()) { throw DeckhandError(.tokenInvalid, refusal) }
      switch token.role {
      case .operator: return .operatorToken(id: id)
      case .viewer: return .viewerToken(id: id)
      case .worker: return .joinToken(id: id)
      case .operatorInvite, .viewerInvite: return .inviteToken(id: id, role: token.role)
      case .operatorSession, .viewerSession: return .webSession(id: id, parent: token.labels["parent"] ?? "")
      }
    }
  }

  /// The caller of `authorization` if it may make a call of `access`.
  ///
  /// - Throws: ``DeckhandError`` `tokenInvalid` (see ``authenticate(_:)``)
  ///   or `permissionDenied` (see ``check(_:for:)``).
  @discardableResult
  package func authorize(_ authorization: String?, for access: Principal.Access) async throws -> Principal {
    let principal = try await authenticate(authorization)
    try Self.check(principal, for: access)
    return principal
  }

  /// Refuses `principal` a call of `access` it may not make, saying which
  /// role may: the one check of the gRPC API and the web UI alike.
  ///
  /// - Throws: ``DeckhandError`` `permissionDenied`.
  package static func check(_ principal: Principal, for access: Principal.Access) throws {
    guard !principal.may(access) else { return }
    switch principal {
    case .viewerToken:
      throw DeckhandError(
        .permissionDenied, "a viewer reads and changes nothing, and does not see tokens; this needs an operator token")
    case .inviteToken:
      throw DeckhandError(
        .permissionDenied,
        "an invite token is good only for `deckhand login --invite`, which turns it into a login token")
    case .webSession:
      throw DeckhandError(.permissionDenied, "a web session is good only for the web UI; use a login token")
    default:
      throw DeckhandError(
        .permissionDenied,
        "this is \(access == .read ? "an operator's or a viewer's" : "an operator's") call; "
          + "a \(principal.role) may not make it (use an operator token)")
    }
  }

  /// A node's credential hash (or its removal) that this replica does not
  /// hold: a node that joined through another replica, or a made-up id.
  /// Read from the store and kept; an unknown id is kept as unknown for
  /// ``tokenCacheLifetime``, so made-up ids do not each cost a read.
  private func storedCredential(of id: String) async throws -> (hash: String?, removedName: String?) {
    let now = ContinuousClock.now
    if let missed = state.withLock({ $0.unknownNodes[id] }), missed.duration(to: now) < Self.tokenCacheLifetime {
      return (nil, nil)
    }
    if let node = try await store.node(id: id) {
      state.withLock { $0.nodeCredentials[id] = node.credentialHash }
      return (node.credentialHash, nil)
    }
    if let removed = try await store.removedNodes().first(where: { $0.id == id }) {
      state.withLock { $0.removedNodes[id] = removed.name }
      return (nil, removed.name)
    }
    state.withLock { state in
      if state.unknownNodes.count > 10_000 { state.unknownNodes = [:] }
      state.unknownNodes[id] = now
    }
    return (nil, nil)
  }

  private static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let left = Array(a.utf8)
    let right = Array(b.utf8)
    guard left.count == right.count else { return false }
    var difference: UInt8 = 0
    for index in left.indices { difference |= left[index] ^ right[index] }
    return difference == 0
  }

  // MARK: Nodes and sessions

  /// Agent sessions open on this replica.
  package var openSessions: Int { state.withLock { $0.sessions.count } }

  /// Join: a new node record with its credential.
  ///
  /// - Throws: ``DeckhandError`` `alreadyExists` when another node holds
  ///   the name (asked for, or the host name by default): a name is the
  ///   operator's handle on a node, so a joining agent never takes one over
  ///   nor gets a variant of it.
  package func join(
    name requested: String, description: Deckhand_Dispatcher_V1_NodeDescription, tokenId: String
  ) async throws -> (NodeRecord, String) {
    guard let token = try await token(id: tokenId) else {
      throw DeckhandError(.tokenInvalid, "unknown token \(tokenId)")
    }
    let id = Self.randomText(bytes: 12)
    let secret = Self.randomText(bytes: 32)
    var name = requested.isEmpty ? description.hostname : requested
    if name.isEmpty { name = "node-\(id.prefix(6).lowercased())" }
    func taken() async throws -> DeckhandError? {
      guard let holder = try await store.node(named: name) else { return nil }
      return DeckhandError(
        .alreadyExists,
        "node name \(name) is taken by node \(holder.id); join with another --node-name"
      )
    }
    if let refusal = try await taken() { throw refusal }
    let now = nowMs()
    var record = NodeRecord(
      id: id, name: name, hostname: "", labels: [:], platform: "", agentVersion: "", address: "", plugins: [:],
      status: .unknown, lastHeartbeatMs: 0, createdMs: now, credentialHash: Self.hash(secret))
    record.describe(description)
    // The token's labels and what it lets the agent choose; not what the
    // agent claims.
    record.labels = token.grantedLabels(asked: description.labels)
    record.joinTokenId = tokenId
    do {
      try await store.save(record)
    } catch {
      // Two joins for one name at once: the store's unique name decides.
      if let refusal = try await taken() { throw refusal }
      throw error
    }
    state.withLock {
      $0.nodeCredentials[id] = record.credentialHash
      $0.unknownNodes[id] = nil
    }
    logger.info("node joined", metadata: ["node": "\(name)", "id": "\(id)"])
    events.record(FleetEvent(atMs: nowMs(), kind: .nodeJoined, nodeId: id, nodeName: name))
    for observer in placementObservers.withLock({ $0 }) { observer(id) }
    return (record, Credential.node(id: id, secret: secret).text)
  }

  /// Sets and removes `key`'s labels (the operator's): placement follows
  /// at once (a reconcile), and the node's waiting job runners look again.
  package func setNodeLabels(_ key: String, set: [String: String], remove: [String]) async throws -> NodeRecord {
    for (label, value) in set {
      if let problem = LabelRule.problem(key: label, value: value) {
        throw DeckhandError(.configurationInvalid, problem)
      }
    }
    var node = try await findNode(key)
    for label in remove { node.labels[label] = nil }
    for (label, value) in set { node.labels[label] = value }
    try await placementChanged(node)
    logger.info("node labels set", metadata: ["node": "\(node.name)", "labels": "\(node.labels)"])
    return node
  }

  /// Drains `key` (no new tasks or jobs reach it; what runs goes on) or
  /// makes it active again; placement and its waiting runners follow.
  package func setNodeAvailability(_ key: String, _ availability: NodeAvailability) async throws -> NodeRecord {
    var node = try await findNode(key)
    node.availability = availability
    try await placementChanged(node)
    logger.info("node availability set", metadata: ["node": "\(node.name)", "availability": "\(availability)"])
    events.record(
      FleetEvent(
        atMs: nowMs(), kind: availability == .drain ? .nodeDrained : .nodeActivated, nodeId: node.id,
        nodeName: node.name))
    return node
  }

  /// Saves `node`, whose labels or availability changed, and lets
  /// placement follow: a reconcile, and the observers (the job queue wakes
  /// the node's waiting runners).
  private func placementChanged(_ node: NodeRecord) async throws {
    try await store.save(node)
    requestReconcile()
    for observer in placementObservers.withLock({ $0 }) { observer(node.id) }
  }

  /// Calls `observer` with a node's id whenever a node joins or its labels
  /// or availability change.
  package func onPlacementChanged(_ observer: @escaping @Sendable (String) -> Void) {
    placementObservers.withLock { $0.append(observer) }
  }

  /// Removes node `key` (id or name) from the fleet: its credential is
  /// refused from now on (naming the node), its session and every stream
  /// it holds end, its tasks are retired (REMOVED, and rollouts go on
  /// without it) and the jobs its runner had not ended are queued again.
  /// What runs on the machine is left to its agent, which can no longer
  /// reach the server (SwarmKit's `node rm`).
  package func removeNode(_ key: String) async throws -> NodeRemoval {
    let node = try await findNode(key)
    guard let removal = try await store.removeNode(id: node.id, nowMs: nowMs()) else {
      throw DeckhandError(.notFound, "no node \(key); `deckhand nodes ls` shows them")
    }
    forgetRemoved(node.id, name: node.name)
    bus?.publish(.removed(node.id))
    requestReconcile()
    for observer in removalObservers.withLock({ $0 }) { observer(removal) }
    events.record(
      FleetEvent(
        atMs: nowMs(), kind: .nodeRemoved, nodeId: node.id, nodeName: node.name,
        message: "\(removal.retiredTasks.count) task(s) retired, \(removal.releasedJobs.count) job(s) requeued"))
    logger.warning(
      "node removed",
      metadata: [
        "node": "\(node.name)", "id": "\(node.id)", "retired_tasks": "\(removal.retiredTasks.count)",
        "requeued_jobs": "\(removal.releasedJobs.count)",
      ])
    return removal
  }

  /// A removed node's credential is refused from now on; its session and
  /// streams end.
  private func forgetRemoved(_ id: String, name: String) {
    let session = state.withLock { state in
      state.nodeCredentials[id] = nil
      state.removedNodes[id] = name
      state.liveness.forget(id)
      state.usage[id] = nil
      state.unsavedUsage.remove(id)
      state.names[id] = nil
      return state.sessions.removeValue(forKey: id)
    }
    session?.end.finish()
    removals.signal(id)
  }

  /// What another replica changed.
  package func received(_ event: ReplicaEvent) async {
    switch event {
    case .assignments(let nodes): assignmentChanges.signal(nodes)
    case .removed(let id):
      let name = (try? await store.removedNodes().first { $0.id == id }?.name) ?? id
      forgetRemoved(id, name: name)
    case .reconcile: reconcileSignal.yield()
    case .restored:
      do { try await stateRestored(publishing: false) } catch {
        logger.error("cannot read the state another replica restored: \(error)")
      }
    case .resync:
      do { try await resync() } catch {
        logger.warning("cannot read node credentials again after a gap in the replicas' events: \(error)")
      }
    case .job, .config, .cancel, .queued, .queuedAny: break
    }
  }

  /// After a gap in the other replicas' events: node credentials and
  /// removals are read again (a removal announced in the gap would
  /// otherwise go unnoticed here), and nodes removed meanwhile lose their
  /// sessions and streams.
  private func resync() async throws {
    let nodes = try await store.nodes()
    let removed = try await store.removedNodes()
    let missed = state.withLock { state -> [RemovedNode] in
      let missed = removed.filter { state.nodeCredentials[$0.id] != nil }
      state.nodeCredentials = Dictionary(nodes.map { ($0.id, $0.credentialHash) }, uniquingKeysWith: { $1 })
      for node in removed { state.removedNodes[node.id] = node.name }
      state.unknownNodes = [:]
      state.tokens = [:]
      return missed
    }
    for node in missed { forgetRemoved(node.id, name: node.name) }
  }

  /// Calls `observer` after a node was removed (the job queue wakes runners
  /// for its requeued jobs; the exec relay ends its execs).
  package func onNodeRemoved(_ observer: @escaping @Sendable (NodeRemoval) -> Void) {
    removalObservers.withLock { $0.append(observer) }
  }

  /// Whether `nodeId` is a joined node now.
  package func isJoined(_ nodeId: String) -> Bool {
    state.withLock { $0.nodeCredentials[nodeId] != nil }
  }

  /// Runs `body` (a node's stream) until it ends or the node is removed;
  /// then the stream fails UNAUTHENTICATED, naming the node.
  package func whileJoined<Result: Sendable>(
    _ nodeId: String, _ body: @escaping @Sendable () async throws -> Result
  ) async throws -> Result {
    let (removed, token) = removals.watch(nodeId)
    defer { removals.unwatch(nodeId, token) }
    // Watching first: a removal between the caller's authentication and
    // here is seen by this check, one after it by the watch.
    try checkJoined(nodeId)
    return try await withThrowingTaskGroup(of: Result?.self) { group in
      group.addTask { try await body() }
      group.addTask {
        for await _ in removed { break }
        try Task.checkCancellation()
        try self.checkJoined(nodeId)
        return nil
      }
      defer { group.cancelAll() }
      while let next = try await group.next() {
        if let result = next {
          // A stream the removal ended on its own still says why.
          try checkJoined(nodeId)
          return result
        }
      }
      throw CancellationError()
    }
  }

  private func checkJoined(_ nodeId: String) throws {
    let (joined, removedName) = state.withLock { ($0.nodeCredentials[nodeId] != nil, $0.removedNodes[nodeId]) }
    guard !joined else { return }
    throw DeckhandError(
      .tokenInvalid,
      "node \(removedName ?? nodeId) (\(nodeId)) was removed from the fleet by an operator; its streams are closed")
  }

  /// What `nodeId`'s plugins use and when it was reported: this replica's
  /// latest report if it holds the node's session, else the stored one.
  package func pluginUsage(_ nodeId: String) async throws -> (plugins: [PluginUsage], atMs: Int64)? {
    if let here = state.withLock({ $0.usage[nodeId] }) { return here }
    return try await store.pluginUsage(node: nodeId).map { ($0.usage, $0.reportedMs) }
  }

  /// The node with id or name `key`.
  package func findNode(_ key: String) async throws -> NodeRecord {
    if let node = try await store.node(id: key) { return node }
    if let node = try await store.node(named: key) { return node }
    throw DeckhandError(.notFound, "no node \(key); `deckhand nodes ls` shows them")
  }

  /// Opens (or resumes) `nodeId`'s session: records its description, marks
  /// it READY, ends the session it replaces. The returned stream finishes
  /// when a newer session replaces this one; `period` is the heartbeat
  /// period to give the node.
  package func openSession(_ nodeId: String, description: Deckhand_Dispatcher_V1_NodeDescription, resume: String)
    async throws -> (sessionId: String, node: NodeRecord, period: Duration, ended: AsyncStream<Void>)
  {
    let allowed = state.withLock { $0.limiter.allow(nodeId, now: .now) }
    guard allowed else {
      throw DeckhandError(
        .rateLimited,
        "node \(nodeId) opened more than \(timing.sessionsPerWindow) sessions in \(timing.sessionWindow); back off")
    }
    guard var node = try await store.node(id: nodeId) else {
      throw DeckhandError(.notFound, "node \(nodeId) is not known; join again")
    }
    // A new node may match deployments; otherwise its tasks are in the
    // store and the assignments stream sends them. The labels it reports
    // are informational (agentLabels): they never move placement.
    let needsReconcile = node.lastHeartbeatMs == 0
    let wasReady = node.status == .ready
    node.describe(description)
    node.status = .ready
    node.lastHeartbeatMs = nowMs()
    try await store.save(node)
    let (ended, end) = AsyncStream.makeStream(of: Void.self)
    let newID = Self.randomText(bytes: 12)
    let (sessionId, period) = state.withLock { state -> (String, Duration) in
      let period = state.liveness.period
      let id = state.liveness.sessionOpened(
        nodeId, resume: resume, newID: newID, now: .now, nowMs: node.lastHeartbeatMs, period: period)
      state.sessions[nodeId]?.end.finish()
      state.sessions[nodeId] = (id, end)
      state.names[nodeId] = node.name
      return (id, period)
    }
    if !wasReady {
      events.record(FleetEvent(atMs: node.lastHeartbeatMs, kind: .nodeReady, nodeId: nodeId, nodeName: node.name))
    }
    if needsReconcile { requestReconcile() }
    return (sessionId, node, period, ended)
  }

  /// A heartbeat for `sessionId`: the next period. Judged in memory and
  /// never waits for the store: a node that comes back to life is stored
  /// READY by the next ``sweep()``, with the other changes of its period.
  ///
  /// - Throws: ``DeckhandError`` `notFound` when the session is not the
  ///   node's current one (the agent then opens a new session).
  package func heartbeat(
    _ nodeId: String, sessionId: String, usage: [PluginUsage]? = nil,
    reported: [Deckhand_Dispatcher_V1_PluginEventReport] = [], dropped: Int = 0
  ) throws -> Duration {
    let start = ContinuousClock.now
    defer { metrics.heartbeat(handling: start.duration(to: .now)) }
    let random = Double.random(in: 0..<1)
    let now = nowMs()
    let checked = usage.map(PluginUsage.checked)
    let given = state.withLock { state -> (period: Duration, revived: String?)? in
      // An empty report from a node that never reported (an older
      // agent) stores nothing.
      if let checked, state.sessions[nodeId]?.id == sessionId, !checked.isEmpty || state.usage[nodeId] != nil {
        state.usage[nodeId] = (checked, now)
        state.unsavedUsage.insert(nodeId)
      }
      let period = state.liveness.nextPeriod(random: random)
      switch state.liveness.heartbeat(nodeId, sessionId: sessionId, now: .now, nowMs: now, period: period) {
      case .unknownSession:
        return nil
      case .alive(revived: true):
        state.unsavedStatus[nodeId] = NodeLiveness.StatusChange(id: nodeId, status: .ready, lastHeartbeatMs: now)
        return (period, state.names[nodeId] ?? "")
      case .alive(revived: false):
        return (period, nil)
      }
    }
    guard let given else {
      throw DeckhandError(.notFound, "session \(sessionId) is not this node's current session; open a new one")
    }
    if let name = given.revived {
      events.record(
        FleetEvent(atMs: now, kind: .nodeReady, nodeId: nodeId, nodeName: name, message: "heartbeats came back"))
    }
    if !reported.isEmpty || dropped > 0 { recordReported(reported, dropped: dropped, nodeId: nodeId, nowMs: now) }
    return given.period
  }

  /// What a node's agent said happened to its plugins, checked
  /// (``FleetEvent/reported(kind:plugin:message:nodeId:nodeName:nowMs:)``),
  /// at most ``FleetEvent/maxReportedPerHeartbeat`` a heartbeat.
  private func recordReported(
    _ reported: [Deckhand_Dispatcher_V1_PluginEventReport], dropped: Int, nodeId: String, nowMs now: Int64
  ) {
    let name = state.withLock { $0.names[nodeId] } ?? ""
    let kept = reported.prefix(FleetEvent.maxReportedPerHeartbeat).compactMap {
      FleetEvent.reported(
        kind: $0.kind, plugin: $0.plugin, message: $0.message, nodeId: nodeId, nodeName: name, nowMs: now)
    }
    events.record(kept)
    let lost = max(0, dropped) + reported.count - kept.count
    if lost > 0 {
      logger.warning("node \(name.isEmpty ? nodeId : name) reported \(lost) plugin event(s) that were not kept")
    }
  }

  /// Marks nodes whose heartbeats stopped DOWN, and writes recent
  /// heartbeat times to the store in one transaction.
  package func sweep() async throws {
    let now = nowMs()
    let (changes, unsaved, usage) = state.withLock { state in
      var pending = state.unsavedStatus
      state.unsavedStatus = [:]
      let fresh = state.liveness.sweep(now: .now)
      for change in fresh { pending[change.id] = change }
      var usage: [String: [PluginUsage]] = [:]
      if now - state.usageStoredMs >= NodeLiveness.persistIntervalMs, !state.unsavedUsage.isEmpty {
        for id in state.unsavedUsage { usage[id] = state.usage[id]?.plugins }
        state.unsavedUsage = []
        state.usageStoredMs = now
      }
      return (fresh, Array(pending.values), usage)
    }
    // Usage is shown only: a report that cannot be stored now waits for
    // the node's next one.
    if !usage.isEmpty { try? await store.setPluginUsage(usage, reportedMs: now) }
    do { try await store.setNodeStatus(unsaved) } catch {
      state.withLock { state in
        for change in unsaved where state.unsavedStatus[change.id] == nil { state.unsavedStatus[change.id] = change }
      }
      throw error
    }
    let names = state.withLock { $0.names }
    for change in changes where change.status == .down {
      logger.warning("node down: its heartbeats stopped", metadata: ["node": "\(change.id)"])
      events.record(
        FleetEvent(
          atMs: now, kind: .nodeDown, nodeId: change.id, nodeName: names[change.id] ?? "",
          message: "its heartbeats stopped"))
    }
    try await sweepStaleNodes()
    if isLeader { await events.pruneIfDue(nowMs: now) }
  }

  /// With replicas, the leader marks DOWN the READY nodes whose heartbeat
  /// time no replica has stored for longer than a replica stores it
  /// (``NodeLiveness/persistIntervalMs``) plus the DOWN timeout and a
  /// margin: the replica that held their session died, and they did not
  /// come back to another.
  private func sweepStaleNodes() async throws {
    guard bus?.isShared == true, isLeader else { return }
    let now = nowMs()
    // The longest period any replica may give: one for the whole fleet
    // (every node's credential is known here), with its jitter.
    let longest = state.withLock { state -> Duration? in
      guard now - state.lastStaleSweepMs >= 5_000 else { return nil }
      state.lastStaleSweepMs = now
      return timing.period(nodes: state.nodeCredentials.count) * (1 + timing.heartbeatJitter)
    }
    guard let longest else { return }
    let downAfter = timing.downAfter(given: longest)
    let cutoff = now - NodeLiveness.persistIntervalMs - Int64(downAfter.inMilliseconds) - 5_000
    let down = try await store.markStaleNodesDown(heartbeatBeforeMs: cutoff)
    let names = state.withLock { $0.names }
    for id in down {
      logger.warning("node down: no replica has had its heartbeats", metadata: ["node": "\(id)"])
      events.record(
        FleetEvent(
          atMs: now, kind: .nodeDown, nodeId: id, nodeName: names[id] ?? "",
          message: "no replica has had its heartbeats"))
    }
  }

  /// Nodes that are DOWN now (in memory), for the benchmark and tests.
  package var downNodes: Set<String> {
    state.withLock { $0.liveness.downNodes }
  }

  /// How long a replica that stopped announcing itself stays in agents'
  /// lists.
  static let replicaLifetime: Duration = .seconds(15)

  /// Announces this replica (`id`, serving at `address`) and reads the
  /// replicas alive now; sessions are told when the list changed.
  package func refreshReplicas(id: String, address: String) async throws {
    let now = nowMs()
    try await store.announceReplica(id: id, address: address, nowMs: now)
    var live = try await store.replicas(seenSinceMs: now - Int64(Self.replicaLifetime.inMilliseconds))
    if !live.contains(address) { live.insert(address, at: 0) }
    let changed = managerList.withLock { list -> Bool in
      guard list != live else { return false }
      list = live
      return true
    }
    if changed {
      logger.info("replicas", metadata: ["addresses": "\(live.joined(separator: ","))"])
      managerChanges.signal(0)
    }
  }

  /// The store's state was replaced (a snapshot was restored): what this
  /// server keeps in memory is read again from the store, every node's
  /// session ends (agents open new ones; a node the snapshot does not
  /// know is refused), and placement runs again.
  package func stateRestored(publishing: Bool = true) async throws {
    var credentials: [String: String] = [:]
    for node in try await store.nodes() { credentials[node.id] = node.credentialHash }
    var removed: [String: String] = [:]
    for node in try await store.removedNodes() { removed[node.id] = node.name }
    let ends = state.withLock { state in
      state.nodeCredentials = credentials
      state.removedNodes = removed
      state.tokens = [:]
      state.unsavedStatus = [:]
      let ends = state.sessions.values.map(\.end)
      state.sessions = [:]
      return ends
    }
    for end in ends { end.finish() }
    if publishing { bus?.publish(.restored) }
    requestReconcile()
    for observer in restoreObservers.withLock({ $0 }) { observer() }
    logger.warning("state restored from a snapshot", metadata: ["nodes": "\(credentials.count)"])
  }

  /// Calls `observer` after a snapshot was restored (the job queue forgets
  /// what it cached).
  package func onStateRestored(_ observer: @escaping @Sendable () -> Void) {
    restoreObservers.withLock { $0.append(observer) }
  }

  /// Ends every session (server shutdown).
  package func endSessions() {
    let ends = state.withLock { state in
      let ends = state.sessions.values.map(\.end)
      state.sessions = [:]
      return ends
    }
    for end in ends { end.finish() }
    assignmentChanges.close()
    managerChanges.close()
    removals.close()
    reconcileSignal.finish()
  }

  // MARK: Assignments

  /// The node's current assignments (active tasks).
  package func assignments(_ nodeId: String) async throws -> [TaskRecord] {
    try await store.tasks(node: nodeId, deployment: nil, activeOnly: true)
  }

  /// NEW tasks that were just sent become ASSIGNED.
  package func markAssigned(_ tasks: [TaskRecord]) async throws {
    let fresh = tasks.filter { $0.state == .new }
    guard !fresh.isEmpty else { return }
    _ = try await store.updateTasks(
      fresh.map {
        TaskUpdate(id: $0.id, nodeId: $0.nodeId, state: .assigned, message: "sent to the node", onlyFrom: .new)
      })
  }

  /// Agents' task states, committed before this returns.
  package func updateTaskStatus(_ nodeId: String, _ updates: [Deckhand_Dispatcher_V1_TaskStatus]) async throws {
    let known = try updates.map { update in
      guard let state = TaskState(rawValue: update.state.rawValue) else {
        throw DeckhandError(
          .configurationInvalid, "task \(update.taskID): unknown state \(update.state.rawValue) in the status update")
      }
      return TaskUpdate(id: update.taskID, nodeId: nodeId, state: state, message: update.message)
    }
    let changed = try await store.updateTasks(known)
    let name = state.withLock { $0.names[nodeId] } ?? ""
    let now = nowMs()
    events.record(
      changed.map {
        FleetEvent(
          atMs: now, kind: .taskState, nodeId: nodeId, nodeName: name, plugin: $0.plugin, subject: $0.id,
          message: "\($0.state)" + ($0.message.isEmpty ? "" : ": \($0.message)"))
      })
    // Only a rollout in progress moves on when a task ends its start.
    let deployments = Set(changed.filter { $0.state.isSettled }.map(\.deploymentId))
    guard !deployments.isEmpty else { return }
    for id in deployments where try await store.deployment(id: id)?.state != .complete {
      requestReconcile()
      return
    }
  }

  // MARK: Artifacts

  /// Stores the package at `path` (its content in the store, addressed by
  /// `digest`; the file is moved or removed) once its plugin.json is
  /// checked to be `name`@`version`.
  package func addArtifact(
    at path: String, digest: String, size: Int64, name: String, version: String, platform: String
  ) async throws -> ArtifactRecord {
    try ArtifactPackage.check(path: path, name: name, version: version)
    try await store.storeArtifactContent(digest: digest, file: path)
    let record = ArtifactRecord(
      digest: digest, name: name, version: version, platform: platform, size: size, createdMs: nowMs())
    try await store.save(record)
    logger.info("artifact stored", metadata: ["plugin": "\(name)", "version": "\(version)", "digest": "\(digest)"])
    return record
  }

  /// Whether `principal` may download artifact `digest`: an operator any;
  /// a node only one that a task of its own names (a package may hold
  /// what only the nodes it was deployed to should see); a join token
  /// none.
  ///
  /// - Throws: ``DeckhandError`` `notFound` (no such artifact, or not one
  ///   for this node: a node does not learn which others exist) or
  ///   `permissionDenied`.
  package func checkDownload(_ digest: String, by principal: Principal) async throws {
    let notFound = DeckhandError(.notFound, "no artifact \(digest)")
    guard try await store.artifact(digest: digest) != nil else { throw notFound }
    switch principal {
    case .operatorToken:
      return
    case .node(let id):
      guard
        try await store.tasks(node: id, deployment: nil, activeOnly: false).contains(where: {
          $0.artifactDigest == digest
        })
      else { throw notFound }
    case .joinToken:
      throw DeckhandError(.permissionDenied, "a worker join token can only join; join the agent first")
    case .viewerToken, .inviteToken, .webSession:
      throw DeckhandError(
        .permissionDenied,
        "a \(principal.role) may not download packages (they may hold secrets); use an operator token")
    }
  }

  /// Stores a package file from this machine (`deckhand dev`).
  package func addArtifact(file path: String, platform: String) async throws -> ArtifactRecord {
    let manifest = try ArtifactPackage.manifest(path: path)
    guard let data = FileManager.default.contents(atPath: path) else {
      throw DeckhandError(
        .configurationInvalid,
        "cannot read the package \(path): \(String(cString: strerror(errno))); check the path and that this user may read it"
      )
    }
    let digest = HexText.encode(SHA256.hash(data: data))
    let copy = "\(artifactsDirectory)/upload-\(Self.randomText(bytes: 8))"
    try data.write(to: URL(fileURLWithPath: copy))
    defer { try? FileManager.default.removeItem(atPath: copy) }
    return try await addArtifact(
      at: copy, digest: digest, size: Int64(data.count), name: manifest.name, version: manifest.version,
      platform: platform)
  }

  // MARK: Deployments

  /// A new desired state for a plugin; it replaces the plugin's previous
  /// deployment node by node.
  /// How a deployment's rollout goes (``DeploymentRecord``'s fields).
  package struct Rollout: Sendable, Hashable {
    package var parallelism = 1
    package var delayMs: Int64 = 0
    package var failureAction = DeploymentRecord.FailureAction.pause
    package var monitorMs: Int64 = 0
    package init(
      parallelism: Int = 1, delayMs: Int64 = 0, failureAction: DeploymentRecord.FailureAction = .pause,
      monitorMs: Int64 = 0
    ) {
      self.parallelism = parallelism
      self.delayMs = delayMs
      self.failureAction = failureAction
      self.monitorMs = monitorMs
    }
  }

  package func deploy(
    plugin: String, version: String, selector: [String: String], configJSON: String, maxFailures: Int,
    rollout: Rollout = Rollout()
  ) async throws -> DeploymentRecord {
    try PluginName.check(plugin)
    guard let artifact = try await store.artifact(name: plugin, version: version) else {
      throw DeckhandError(
        .notFound,
        "no artifact for \(plugin)@\(version); push its package first: deckhand artifacts push PACKAGE.tar.gz")
    }
    if !configJSON.isEmpty {
      guard case .object = try? JSONValue.parse(Array(configJSON.utf8)) else {
        throw DeckhandError(.configurationInvalid, "--config must be a JSON object")
      }
    }
    // Under the reconcile lock: a reconcile that read the deployments
    // before this write would otherwise store its stale copy of the one
    // replaced here (still rolling), and the two would take turns placing
    // tasks (seen as 65 tasks removed in 20 s in ControlPlaneTests).
    let record = try await reconcileLock.run {
      var changed: [DeploymentRecord] = []
      for var previous in try await store.deployments() where previous.plugin == plugin && previous.state.isLive {
        previous.state = .replaced
        changed.append(previous)
      }
      let record = DeploymentRecord(
        id: Self.randomText(bytes: 10), plugin: plugin, version: version, artifactDigest: artifact.digest,
        artifactSize: artifact.size, selector: selector, configJSON: configJSON, maxFailures: max(0, maxFailures),
        state: .rolling, createdMs: nowMs(), parallelism: rollout.parallelism, delayMs: rollout.delayMs,
        failureAction: rollout.failureAction, monitorMs: rollout.monitorMs, previousId: changed.last?.id ?? "",
        traceContext: TraceCarrier.current())
      changed.append(record)
      try await store.apply(deployments: changed, tasks: [])
      return record
    }
    logger.info("deployment created", metadata: ["plugin": "\(plugin)", "version": "\(version)", "id": "\(record.id)"])
    events.record(
      FleetEvent(
        atMs: record.createdMs, kind: .rolloutStarted, plugin: plugin, subject: record.id,
        message: "\(plugin)@\(version)"
          + (selector.isEmpty
            ? "" : " on \(selector.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))"))
    )
    // Placement is the leader's: here at once, or on the leader soon.
    if isLeader { try await reconcile() } else { requestReconcile() }
    return record
  }

  /// Asks the reconcile loop to run (soon, coalesced).
  /// The leader's reconcile runs; on another replica, it is told.
  package func requestReconcile() {
    if isLeader {
      reconcileSignal.yield()
    } else {
      bus?.publish(.reconcile)
    }
  }

  /// Runs ``reconcile()`` whenever asked, until ``endSessions()``, at most every ``reconcileSpacing``: a rollout to
  /// 10,000 nodes asks on every task status, and each run reads every
  /// node and task.
  package func runReconcileLoop() async {
    await withTaskGroup(of: Void.self) { group in
      // A rollout's delay or monitor period ends: plan again then.
      group.addTask {
        while !self.assignmentChanges.isClosed {
          try? await Task.sleep(for: Self.reconcileSpacing)
          let now = nowMs()
          let due = self.recheckAt.withLock { at -> Bool in
            guard let due = at, due <= now else { return false }
            at = nil
            return true
          }
          if due { self.requestReconcile() }
        }
      }
      for await _ in reconcileRequests where isLeader {
        do {
          try await reconcile()
        } catch {
          logger.error("reconcile failed: \(error)")
        }
        try? await Task.sleep(for: Self.reconcileSpacing)
      }
      group.cancelAll()
    }
  }

  /// Asks for a reconcile at `ms` (the earliest asked wins).
  private func recheck(atMs ms: Int64) {
    recheckAt.withLock { $0 = min($0 ?? ms, ms) }
  }

  private let recheckAt = Mutex<Int64?>(nil)

  static let reconcileSpacing: Duration = .milliseconds(200)

  private let reconcileLock = AsyncLock()
  private let placementObservers = Mutex<[@Sendable (String) -> Void]>([])
  private let removalObservers = Mutex<[@Sendable (NodeRemoval) -> Void]>([])
  private let restoreObservers = Mutex<[@Sendable () -> Void]>([])

  /// Turns deployments into tasks (``RolloutPlanner`` decides) and wakes
  /// the assignment streams of the nodes whose tasks changed.
  package func reconcile() async throws {
    try await reconcileLock.run {
      let deployments = try await store.deployments()
      guard deployments.contains(where: { $0.state.isLive }) else { return }
      let plan = RolloutPlanner { Self.randomText(bytes: 12) }.plan(
        deployments: deployments, nodes: try await store.nodes(),
        active: try await store.tasks(node: nil, deployment: nil, activeOnly: true), nowMs: nowMs())
      try await store.apply(deployments: plan.deployments, tasks: plan.tasks)
      let before = Dictionary(deployments.map { ($0.id, $0.state) }) { first, _ in first }
      let now = nowMs()
      events.record(
        plan.deployments.compactMap { changed in
          guard before[changed.id] != changed.state else { return nil }
          let kind: FleetEvent.Kind
          switch changed.state {
          case .complete: kind = .rolloutDone
          case .paused: kind = .rolloutPaused
          case .rolledBack: kind = .rolloutRolledBack
          case .rolling, .replaced: return nil
          }
          return FleetEvent(
            atMs: now, kind: kind, plugin: changed.plugin, subject: changed.id,
            message: "\(changed.plugin)@\(changed.version): \(changed.state)")
        })
      assignmentChanges.signal(plan.wake)
      if !plan.wake.isEmpty { bus?.publish(.assignments(Array(plan.wake))) }
      if let at = plan.recheckAtMs { recheck(atMs: at) }
    }
  }
}
