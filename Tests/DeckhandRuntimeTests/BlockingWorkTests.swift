import DeckhandRuntime
import Foundation
import Synchronization
import Testing

@Suite("BlockingWork: a bounded pool for blocking calls")
struct BlockingWorkTests {
  @Test("work runs on the pool, never on the caller's thread, and its result and errors come back")
  func runsOffTheCaller() async throws {
    let caller = pthread_self()
    let ranElsewhere = try await BlockingWork.run { pthread_equal(pthread_self(), caller) == 0 }
    #expect(ranElsewhere)
    struct Failure: Error {}
    await #expect(throws: Failure.self) { try await BlockingWork.run { throw Failure() } }
  }

  /// How many calls run now, and the most at once.
  final class Gauge: Sendable {
    private let counts = Mutex((now: 0, most: 0))
    func enter() {
      counts.withLock {
        $0.now += 1
        $0.most = max($0.most, $0.now)
      }
    }
    func leave() { counts.withLock { $0.now -= 1 } }
    var most: Int { counts.withLock { $0.most } }
  }

  @Test("no more than threadCount calls block at once")
  func bounded() async throws {
    let running = Gauge()
    try await withThrowingTaskGroup(of: Void.self) { group in
      for _ in 0..<(BlockingWork.threadCount * 3) {
        group.addTask {
          try await BlockingWork.run {
            running.enter()
            usleep(20_000)
            running.leave()
          }
        }
      }
      try await group.waitForAll()
    }
    let most = running.most
    #expect(most <= BlockingWork.threadCount)
    #expect(most > 1, "the pool runs calls side by side")
  }
}
