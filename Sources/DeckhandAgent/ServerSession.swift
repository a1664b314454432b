internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
internal import GRPCCore
internal import Logging

/// The agent's side of the dispatcher: one session at a time with the
/// server, heartbeats at the period the server gives, the assignments
/// stream into the ``TaskReconciler``, and task states back (all of them
/// again on every new session). When the server is away the agent keeps
/// working and reconnects with backoff min(100 ms + 2 × previous, 8 s),
/// full jitter.
final class ServerSession: Sendable {
  let membership: ServerMembership
  /// The replicas; a session that fails moves to the next.
  let servers: ServerList
  let reconciler: TaskReconciler
  let describe: @Sendable () async -> Deckhand_Dispatcher_V1_NodeDescription
  /// Fills each heartbeat: the running plugins' usage, and what happened
  /// to them since the last.
  let report: @Sendable () async -> Deckhand_Dispatcher_V1_HeartbeatRequest
  /// Answers `deckhand logs` requests; nil: none are taken.
  let logs: PluginLogReader?
  let timing: ControlPlaneTiming
  let logger: Logger

  init(
    membership: ServerMembership, servers: ServerList, reconciler: TaskReconciler,
    timing: ControlPlaneTiming = ControlPlaneTiming(), logger: Logger,
    report: @escaping @Sendable () async -> Deckhand_Dispatcher_V1_HeartbeatRequest = { .init() },
    logs: PluginLogReader? = nil,
    describe: @escaping @Sendable () async -> Deckhand_Dispatcher_V1_NodeDescription
  ) {
    self.report = report
    self.logs = logs
    self.membership = membership
    self.servers = servers
    self.reconciler = reconciler
    self.timing = timing
    self.logger = logger
    self.describe = describe
  }

  /// Keeps a session open until cancelled.
  func run() async {
    var sessionId = ""
    await reconnecting(timing: timing) { connected in
      let endpoint = servers.current
      do {
        try await session(endpoint, resume: &sessionId, connected: connected)
      } catch {
        let described = ControlPlaneClient.describe(error, endpoint: endpoint)
        logger.warning("session with the server ended: \(described.message)", metadata: ["server": "\(endpoint)"])
        // Another replica, if there is one, for the next attempt.
        servers.failed(endpoint)
        throw error
      }
      return false
    } failed: { _ in
    }
  }

  private struct SessionEnded: Error {}
  private struct BrokenChain: Error {}

  private func session(
    _ endpoint: ServerEndpoint, resume sessionId: inout String, connected: @escaping @Sendable () -> Void
  ) async throws {
    let credential = ControlPlaneClient.metadata(membership.credential)
    let reconciler = self.reconciler
    let logger = self.logger
    var request = Deckhand_Dispatcher_V1_SessionRequest()
    request.description_p = await describe()
    request.sessionID = sessionId
    let opened = try await ControlPlaneClient.withClient(endpoint, caPEM: membership.caPEM) { client in
      let dispatcher = Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client)
      return try await dispatcher.session(request, metadata: credential) { response in
        let (messages, forward) = AsyncStream.makeStream(of: Deckhand_Dispatcher_V1_SessionMessage.self)
        return try await withThrowingTaskGroup(of: Void.self) { group in
          // The session stream: its end (the server closed it, or a newer
          // session replaced it) ends this session.
          group.addTask {
            defer { forward.finish() }
            for try await message in response.messages { forward.yield(message) }
            throw SessionEnded()
          }
          var iterator = messages.makeAsyncIterator()
          guard let first = await iterator.next() else {
            try await group.next()
            throw SessionEnded()
          }
          let id = first.sessionID
          let servers = self.servers
          servers.learned(first.managers.map(\.address))
          connected()
          logger.info("session open", metadata: ["session": "\(id)", "node": "\(first.node.name)"])
          // Later messages bring the replicas' list again.
          group.addTask {
            while let update = await iterator.next() { servers.learned(update.managers.map(\.address)) }
          }
          if let logs = self.logs {
            group.addTask {
              try await logs.run(dispatcher, metadata: credential)
              throw SessionEnded()
            }
          }
          group.addTask {
            // Heartbeats on a stream of their own, each answered within
            // the period.
            let period = Duration.milliseconds(first.heartbeatPeriodMs > 0 ? first.heartbeatPeriodMs : 5000)
            try await HeartbeatStream.run(
              dispatcher, session: id, metadata: credential, firstDelay: period, timeout: period, report: self.report)
            throw SessionEnded()
          }
          group.addTask {
            // Every known state first, then each change as it comes.
            var update = Deckhand_Dispatcher_V1_UpdateTaskStatusRequest()
            update.sessionID = id
            let (current, changes) = try reconciler.subscribe()
            update.updates = current
            if !update.updates.isEmpty {
              _ = try await dispatcher.updateTaskStatus(update, metadata: credential)
            }
            for await status in changes {
              update.updates = [status]
              _ = try await dispatcher.updateTaskStatus(update, metadata: credential)
            }
          }
          group.addTask {
            var assignments = Deckhand_Dispatcher_V1_AssignmentsRequest()
            assignments.sessionID = id
            try await dispatcher.assignments(assignments, metadata: credential) { response in
              reconciler.streamOpened()
              for try await message in response.messages {
                guard reconciler.apply(message) else { throw BrokenChain() }
              }
            }
            throw SessionEnded()
          }
          try await group.next()
          group.cancelAll()
          return id
        }
      }
    }
    sessionId = opened
  }
}
