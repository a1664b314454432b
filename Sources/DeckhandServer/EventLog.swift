package import DeckhandCore
package import Logging
internal import Synchronization

/// The fleet's events: recorded where things happen without waiting
/// (``record(_:)``), written to the store in batches by ``run()`` (one
/// write per 50 ms at most, so a thousand jobs a second cost twenty
/// writes), and followed by `StreamEvents` streams.
///
/// Events are history, not state: one that cannot be stored (the disk is
/// full) waits for the next batch, and beyond ``maxPending`` the oldest
/// are dropped and the drop is logged.
package final class EventLog: Sendable {
  /// Events waiting for the store, at most.
  static let maxPending = 10_000

  let store: any ServerStore
  let logger: Logger
  /// How long events are kept.
  let retention: Duration
  private let lastPruneMs = Mutex<Int64>(0)
  /// Signalled (key 0) when a batch is stored: followers read on.
  let stored = SignalHub<Int>()
  private let pending = Mutex<(events: [FleetEvent], dropped: Int)>(([], 0))
  private let wake: AsyncStream<Void>.Continuation
  private let wakes: AsyncStream<Void>

  init(store: any ServerStore, retention: Duration, logger: Logger) {
    self.retention = retention
    self.store = store
    self.logger = logger
    (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
  }

  /// Records `event` with the next batch.
  func record(_ event: FleetEvent) { record(CollectionOfOne(event)) }

  /// Records `events`, in order, with the next batch.
  func record(_ events: some Collection<FleetEvent>) {
    guard !events.isEmpty else { return }
    pending.withLock { pending in
      pending.events.append(contentsOf: events)
      Self.trim(&pending)
    }
    wake.yield()
  }

  /// Writes batches until ``close()``, then the last one.
  func run() async {
    for await _ in wakes {
      await flush()
      try? await Task.sleep(for: .milliseconds(50))
    }
    await flush()
  }

  /// Deletes events older than ``retention``, at most once a minute (the
  /// leader's sweep calls it).
  func pruneIfDue(nowMs now: Int64) async {
    let due = lastPruneMs.withLock { last -> Bool in
      guard now - last >= 60_000 else { return false }
      last = now
      return true
    }
    guard due else { return }
    do {
      let pruned = try await store.pruneEvents(before: now - Int64(retention.inMilliseconds))
      if pruned > 0 { logger.debug("pruned \(pruned) fleet events") }
    } catch {
      logger.warning("fleet events not pruned: \(error)")
    }
  }

  /// Drops the oldest events past ``maxPending``, counting them.
  private static func trim(_ pending: inout (events: [FleetEvent], dropped: Int)) {
    let over = pending.events.count - maxPending
    guard over > 0 else { return }
    pending.events.removeFirst(over)
    pending.dropped += over
  }

  /// Ends ``run()`` (after its last batch) and every follower.
  func close() {
    wake.finish()
    stored.close()
  }

  /// Events stored on any replica since a follower last looked are found
  /// by its once-a-second read; here, a replica's own are signalled.
  private func flush() async {
    let (batch, dropped) = pending.withLock { pending in
      defer { pending = ([], 0) }
      return (pending.events, pending.dropped)
    }
    if dropped > 0 {
      logger.warning("\(dropped) fleet events were dropped: the store did not take them in time")
    }
    guard !batch.isEmpty else { return }
    do {
      try await store.append(events: batch)
      stored.signal(0)
    } catch {
      logger.warning("fleet events not stored yet: \(error)")
      // Back in front of what came meanwhile, for the next batch.
      pending.withLock { pending in
        pending.events.insert(contentsOf: batch, at: 0)
        Self.trim(&pending)
      }
      try? await Task.sleep(for: .seconds(1))
      wake.yield()
    }
  }
}
