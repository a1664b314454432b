internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
internal import Synchronization

/// One simulated agent of ``DispatcherBenchmark``: a session held open, an
/// assignments stream whose tasks it reports RUNNING (the first arrival of
/// each version is timed), and heartbeats at the period the server gives,
/// starting at a random point of it; all again if anything ends.
final class SimulatedAgent: Sendable {
  typealias Dispatcher = Deckhand_Dispatcher_V1_Dispatcher.Client<HTTP2ClientTransport.Posix>

  let nodeId: String
  let credential: String
  /// When a task of each plugin version first arrived.
  private let arrivals = Mutex<[String: ContinuousClock.Instant]>([:])

  init(nodeId: String, credential: String) {
    self.nodeId = nodeId
    self.credential = credential
  }

  /// When a task of `version` first arrived, if one did.
  func arrival(of version: String) -> ContinuousClock.Instant? {
    arrivals.withLock { $0[version] }
  }

  /// Runs until cancelled.
  func run(_ dispatcher: Dispatcher, period: Duration, log: HeartbeatLog) async {
    let metadata = ControlPlaneClient.metadata(credential)
    while !Task.isCancelled {
      do {
        try await dispatcher.session(Deckhand_Dispatcher_V1_SessionRequest(), metadata: metadata) { response in
          var messages = response.messages.makeAsyncIterator()
          guard let first = try await messages.next() else { return }
          let id = first.sessionID
          try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
              try await Self.heartbeats(dispatcher, session: id, metadata: metadata, period: period, log: log)
            }
            group.addTask { try await self.assignments(dispatcher, session: id, metadata: metadata) }
            try await group.next()
            group.cancelAll()
          }
        }
      } catch {
        try? await Task.sleep(for: .milliseconds(Int.random(in: 100...1000)))
      }
    }
  }

  private static func heartbeats(
    _ dispatcher: Dispatcher, session: String, metadata: Metadata, period: Duration, log: HeartbeatLog
  ) async throws {
    do {
      // One plugin's usage with every heartbeat, as a real agent with the
      // bench plugin sends.
      let started = ContinuousClock.now
      try await HeartbeatStream.run(
        dispatcher, session: session, metadata: metadata, firstDelay: period * Double.random(in: 0..<1),
        timeout: .seconds(30), answered: { roundTrip in log.succeeded(after: roundTrip) },
        report: {
          var usage = Deckhand_Dispatcher_V1_PluginUsage()
          usage.plugin = "bench"
          usage.cpuSeconds = started.duration(to: .now).inSeconds / 1000
          usage.residentBytes = 8_388_608
          var beat = Deckhand_Dispatcher_V1_HeartbeatRequest()
          beat.plugins = [usage]
          return beat
        })
    } catch {
      log.failed(error)
      throw error
    }
  }

  private func assignments(_ dispatcher: Dispatcher, session: String, metadata: Metadata) async throws {
    var request = Deckhand_Dispatcher_V1_AssignmentsRequest()
    request.sessionID = session
    try await dispatcher.assignments(request, metadata: metadata) { response in
      for try await message in response.messages where !message.changes.isEmpty {
        let now = ContinuousClock.now
        var update = Deckhand_Dispatcher_V1_UpdateTaskStatusRequest()
        update.sessionID = session
        for change in message.changes {
          guard change.action == .update, case .task(let task) = change.item else { continue }
          self.arrivals.withLock { arrivals in arrivals[task.version] = arrivals[task.version] ?? now }
          var status = Deckhand_Dispatcher_V1_TaskStatus()
          status.taskID = task.id
          status.state = .running
          update.updates.append(status)
        }
        guard !update.updates.isEmpty else { continue }
        _ = try await dispatcher.updateTaskStatus(update, metadata: metadata)
      }
    }
  }
}
