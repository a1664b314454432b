internal import Synchronization

/// The last lines a plugin wrote to one of its streams, for the event that
/// reports its exit.
package final class LogTail: Sendable {
  private let lines: Mutex<[String]>
  private let capacity: Int

  package init(capacity: Int = 20) {
    self.capacity = capacity
    self.lines = Mutex([])
  }

  package func append(_ line: String) {
    lines.withLock {
      $0.append(line)
      if $0.count > capacity { $0.removeFirst($0.count - capacity) }
    }
  }

  /// The kept lines, oldest first.
  package var snapshot: [String] { lines.withLock { $0 } }
}
