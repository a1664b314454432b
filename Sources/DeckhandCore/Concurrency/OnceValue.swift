internal import Synchronization

/// A value that is set once and awaited by any number of tasks, each of
/// which may be cancelled while it waits.
package final class OnceValue<Value: Sendable>: Sendable {
  private struct State {
    var value: Value?
    var waiters: [UInt64: CheckedContinuation<Value?, Never>] = [:]
    var cancelled: Set<UInt64> = []
    var nextID: UInt64 = 0
  }

  private let state = Mutex(State())

  package init() {}

  /// The value, or nil while unset.
  package var value: Value? { state.withLock { $0.value } }

  /// Sets the value and wakes every waiter. Later calls do nothing.
  /// Returns whether this call set it.
  @discardableResult
  package func set(_ value: Value) -> Bool {
    let waiters: [CheckedContinuation<Value?, Never>]? = state.withLock {
      guard $0.value == nil else { return nil }
      $0.value = value
      let waiters = Array($0.waiters.values)
      $0.waiters = [:]
      return waiters
    }
    guard let waiters else { return false }
    for waiter in waiters { waiter.resume(returning: value) }
    return true
  }

  /// Waits for the value; nil if the task is cancelled first.
  package func wait() async -> Value? {
    let id = state.withLock {
      $0.nextID += 1
      return $0.nextID
    }
    return await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
        let immediate: Value?? = state.withLock {
          if let value = $0.value { return .some(value) }
          if $0.cancelled.remove(id) != nil { return .some(nil) }
          $0.waiters[id] = continuation
          return .none
        }
        if let immediate { continuation.resume(returning: immediate) }
      }
    } onCancel: {
      let waiter = state.withLock {
        let waiter = $0.waiters.removeValue(forKey: id)
        if waiter == nil && $0.value == nil { $0.cancelled.insert(id) }
        return waiter
      }
      waiter?.resume(returning: nil)
    }
  }
}
