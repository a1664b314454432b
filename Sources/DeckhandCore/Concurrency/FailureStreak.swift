/// Failures of a loop that runs often (a sweep every 250 ms), told to a log
/// without flooding it: the first failure, then one line a minute while
/// they go on, then one line when the loop works again.
package struct FailureStreak: Sendable {
  /// What to log, if anything.
  package enum Line: Hashable, Sendable {
    /// The first failure of a streak.
    case started
    /// Failures go on: `count` so far.
    case continuing(count: Int)
    /// The loop works again after `count` failures.
    case ended(count: Int)
  }

  private let interval: Duration
  private var count = 0
  private var lastLine: ContinuousClock.Instant?

  package init(interval: Duration = .seconds(60)) {
    self.interval = interval
  }

  /// One more failure at `now`.
  package mutating func failed(now: ContinuousClock.Instant = .now) -> Line? {
    count += 1
    if count == 1 {
      lastLine = now
      return .started
    }
    guard let last = lastLine, last.duration(to: now) >= interval else { return nil }
    lastLine = now
    return .continuing(count: count)
  }

  /// A success.
  package mutating func succeeded() -> Line? {
    defer {
      count = 0
      lastLine = nil
    }
    return count > 0 ? .ended(count: count) : nil
  }
}
