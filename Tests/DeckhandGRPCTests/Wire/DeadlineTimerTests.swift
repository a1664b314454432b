import NIOCore
import NIOEmbedded
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

  @Test("expire returns the calls past their deadline and sets the timer again for the earliest of the rest")
  func expireRearms() throws {
    let loop = EmbeddedEventLoop()
    var timer = DeadlineTimer()
    let now = NIODeadline.now()
    let fired = NIOLoopBoundBox(0, eventLoop: loop)
    let deadlines: [(Int, NIODeadline?)] = [(1, now - .seconds(1)), (2, nil), (3, now + .hours(1))]
    let expired = timer.expire(deadlines, on: loop) { fired.value += 1 }
    #expect(expired == [1])
    // Set for call 3: it fires once the loop's clock passes that deadline.
    loop.advanceTime(to: now + .hours(1))
    #expect(fired.value == 1)
    // Without an event loop (the connection ended) nothing is set.
    var ended = DeadlineTimer()
    #expect(ended.expire(deadlines, on: nil) { fired.value += 1 } == [1])
    loop.advanceTime(to: now + .hours(2))
    #expect(fired.value == 1)
    try loop.syncShutdownGracefully()
  }
}
