internal import Synchronization

/// Mutual exclusion across suspension points: one ``run(_:)`` body at a
/// time, the others waiting in order without blocking a thread. (A
/// `Mutex` cannot be held across an `await`; the reconcile reads and
/// writes the store while it holds this.)
final class AsyncLock: Sendable {
  private struct State {
    var held = false
    var waiting: [CheckedContinuation<Void, Never>] = []
  }
  private let state = Mutex(State())

  /// Runs `body` once no other body runs.
  func run<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
    await acquire()
    defer { release() }
    return try await body()
  }

  private func acquire() async {
    await withCheckedContinuation { continuation in
      let acquired = state.withLock { state -> Bool in
        if state.held {
          state.waiting.append(continuation)
          return false
        }
        state.held = true
        return true
      }
      if acquired { continuation.resume() }
    }
  }

  private func release() {
    let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
      guard !state.waiting.isEmpty else {
        state.held = false
        return nil
      }
      return state.waiting.removeFirst()
    }
    // The lock passes to the next waiter still held.
    next?.resume()
  }
}
