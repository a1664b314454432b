import NIOCore
import Testing

@testable import DeckhandGRPC

@Suite("DeadlineTimer: one timer for a connection's calls")
struct DeadlineTimerTests {
  @Test("the calls past their deadline, and the earliest of the rest; calls without one are left alone")
  func expired() {
    let now = NIODeadline.uptimeNanoseconds(1_000_000)
    let deadlines: [(Int, NIODeadline?)] = [
      (1, now - .milliseconds(1)), (2, now + .milliseconds(5)), (3, nil), (4, now), (5, now + .milliseconds(2)),
    ]
    let (expired, next) = DeadlineTimer.expired(deadlines, now: now)
    #expect(expired.sorted() == [1, 4])
    #expect(next == now + .milliseconds(2))
    #expect(DeadlineTimer.expired([(1, nil)] as [(Int, NIODeadline?)], now: now).next == nil)
  }
}
