package import DeckhandCore
package import Foundation
internal import Synchronization

/// Runners waiting for a job, by what they accept. A queued job wakes one
/// runner that may take it, not all of them: with many runners idle, a
/// wake-up for every runner on every job made each job cost a database
/// transaction per idle runner.
///
/// A runner reads ``generation`` before it looks in the store and passes
/// it to ``wait(_:since:)``, which refuses to wait when a job was
/// announced in between: no job is announced to nobody.
package final class RunnerWaiters: Sendable {
  /// What a job asks of its runner.
  package struct Target: Sendable, Hashable {
    package var runner: String
    package var labels: [String: String]
    package init(runner: String, labels: [String: String]) {
      self.runner = runner
      self.labels = labels
    }
  }

  private struct Waiter {
    var identity: RunnerIdentity
    var wake: AsyncStream<Void>.Continuation
  }

  private struct State {
    var waiters: [UUID: Waiter] = [:]
    var generation: UInt64 = 0
    var closed = false
  }

  private let state = Mutex(State())

  package init() {}

  /// The ids of the runners waiting now, sorted (for tests and listings).
  package var waiting: [String] { state.withLock { $0.waiters.values.map(\.identity.id).sorted() } }

  /// Counts announcements; see ``wait(_:since:)``.
  package var generation: UInt64 { state.withLock { $0.generation } }

  /// Waits until a job for `identity` is announced, or `timeout` passes.
  /// Returns at once when one was announced after `since`, or after
  /// ``close()``.
  package func wait(_ identity: RunnerIdentity, since: UInt64, timeout: Duration) async {
    let (stream, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    let token = UUID()
    let registered = state.withLock { state in
      guard !state.closed, state.generation == since else { return false }
      state.waiters[token] = Waiter(identity: identity, wake: wake)
      return true
    }
    guard registered else { return }
    await stream.next(orAfter: timeout)
    state.withLock { _ = $0.waiters.removeValue(forKey: token) }
  }

  /// Wakes one waiting runner that may take a job with `target`.
  package func announce(_ target: Target) {
    let wake = state.withLock { state -> AsyncStream<Void>.Continuation? in
      state.generation &+= 1
      guard let (token, waiter) = state.waiters.first(where: { $0.value.identity.accepts(target) }) else {
        return nil
      }
      state.waiters[token] = nil
      return waiter.wake
    }
    wake?.yield()
  }

  /// Wakes every waiting runner (jobs came back in bulk, or shutdown).
  package func announceAll() {
    let wakes = state.withLock { state in
      state.generation &+= 1
      defer { state.waiters = [:] }
      return state.waiters.values.map(\.wake)
    }
    for wake in wakes { wake.yield() }
  }

  /// Ends every wait, now and later.
  package func close() {
    state.withLock { $0.closed = true }
    announceAll()
  }
}

extension RunnerIdentity {
  /// Whether this runner may take a job aimed at `target`: by id, or (for
  /// runners that take any job) by labels, every label of the job matching.
  package func accepts(_ target: RunnerWaiters.Target) -> Bool {
    (target.runner.isEmpty ? !byIdOnly : target.runner == id)
      && target.labels.allSatisfy { labels[$0.key] == $0.value }
  }
}
