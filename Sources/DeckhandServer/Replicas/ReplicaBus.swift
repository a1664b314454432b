package import DeckhandCore
internal import Foundation
package import Logging
internal import PostgresNIO
internal import Synchronization

/// Carries ``ReplicaEvent``s between the server replicas that share one
/// PostgreSQL database: published events are sent in batches with
/// `pg_notify` on one channel, and every replica LISTENs on its own
/// connection and delivers what the others sent. With SQLite there is one
/// server and nothing to carry.
///
/// A NOTIFY is delivered only to connections listening when it commits, so
/// a replica that reconnects may have missed some: every waiter also looks
/// again on its own every second (runners, job streams), which bounds the
/// cost of a lost event.
package final class ReplicaBus: Sendable {
  /// This replica's id: its own events come back and are skipped.
  package let replicaId: String
  private let store: PostgresServerStore?
  private let logger: Logger
  private let pending = Mutex<(events: [ReplicaEvent], seen: Set<ReplicaEvent>)>(([], []))
  private let wake: AsyncStream<Void>.Continuation
  private let wakes: AsyncStream<Void>
  private let deliver = Mutex<(@Sendable ([ReplicaEvent]) async -> Void)?>(nil)

  /// The channel every replica listens on.
  static let channel = "deckhand_events"
  /// The most bytes of events in one notification (PostgreSQL's limit is
  /// 8,000).
  static let payloadLimit = 7_000

  /// A bus over `store`'s database; nil: one server, nothing to carry.
  package init(store: PostgresServerStore?, replicaId: String, logger: Logger) {
    self.store = store
    self.replicaId = replicaId
    self.logger = logger
    (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
  }

  /// Whether other replicas may exist.
  package var isShared: Bool { store != nil }

  /// Sets what receives the other replicas' events.
  package func onEvents(_ body: @escaping @Sendable ([ReplicaEvent]) async -> Void) {
    deliver.withLock { $0 = body }
  }

  /// Sends `event` to the other replicas (soon, with others).
  package func publish(_ event: ReplicaEvent) {
    guard store != nil else { return }
    let added = pending.withLock { pending -> Bool in
      guard pending.seen.insert(event).inserted else { return false }
      pending.events.append(event)
      return true
    }
    if added { wake.yield() }
  }

  /// Sends and receives until cancelled.
  package func run() async {
    guard let store else { return }
    await withTaskGroup(of: Void.self) { group in
      group.addTask { await self.sendLoop(store) }
      group.addTask { await self.listenLoop(store) }
      await group.waitForAll()
    }
  }

  private func sendLoop(_ store: PostgresServerStore) async {
    for await _ in wakes {
      let events = pending.withLock { pending in
        defer { pending = ([], []) }
        return pending.events
      }
      for payload in Self.payloads(events, replicaId: replicaId) {
        do {
          try await store.execute("SELECT pg_notify(\(Self.channel), \(payload))")
        } catch {
          if Task.isCancelled { return }
          logger.warning("cannot tell the other replicas of a change: \(error)")
        }
      }
    }
  }

  /// `events` as notification payloads: this replica's id, then events as
  /// JSON, at most ``payloadLimit`` bytes each.
  static func payloads(_ events: [ReplicaEvent], replicaId: String) -> [String] {
    let encoder = JSONEncoder()
    var payloads: [String] = []
    var batch: [String] = []
    var size = 0
    for event in events {
      guard let data = try? encoder.encode(event), data.count < payloadLimit - replicaId.utf8.count - 2 else {
        continue
      }
      let line = String(decoding: data, as: UTF8.self)
      if size + line.utf8.count + replicaId.utf8.count + 1 > payloadLimit {
        payloads.append(([replicaId] + batch).joined(separator: "\n"))
        batch = []
        size = 0
      }
      batch.append(line)
      size += line.utf8.count + 1
    }
    if !batch.isEmpty { payloads.append(([replicaId] + batch).joined(separator: "\n")) }
    return payloads
  }

  /// The events of a payload another replica sent; nil for this one's own
  /// or a payload that is not Deckhand's.
  static func events(_ payload: String, skipping replicaId: String) -> [ReplicaEvent]? {
    let lines = payload.split(separator: "\n")
    guard let sender = lines.first, sender != replicaId else { return nil }
    let decoder = JSONDecoder()
    return lines.dropFirst().compactMap { try? decoder.decode(ReplicaEvent.self, from: Data($0.utf8)) }
  }

  private func listenLoop(_ store: PostgresServerStore) async {
    let backoff = RestartBackoff(initial: .milliseconds(200), maximum: .seconds(5))
    var attempt = 0
    while !Task.isCancelled {
      do {
        try await store.withOwnConnection { connection in
          let notifications = try await connection.listen(Self.channel)
          attempt = 0
          // Whatever was missed while not listening: everyone looks again.
          await deliver.withLock { $0 }?([.resync, .queuedAny, .reconcile])
          for try await notification in notifications {
            guard let events = Self.events(notification.payload, skipping: replicaId), !events.isEmpty else {
              continue
            }
            await deliver.withLock { $0 }?(events)
          }
        }
      } catch {
        if Task.isCancelled { return }
        logger.warning("listening for the other replicas failed, listening again: \(error)")
      }
      try? await Task.sleep(for: backoff.delay(attempt: attempt, random: .random(in: 0..<1)))
      attempt += 1
    }
  }
}
