import DeckhandCore
import Testing

@Suite("FailureStreak: a loop's failures told without flooding the log")
struct FailureStreakTests {
  @Test("the first failure, then one line a minute, then the recovery with the count")
  func streak() {
    var streak = FailureStreak(interval: .seconds(60))
    let start = ContinuousClock.now
    #expect(streak.succeeded() == nil)
    #expect(streak.failed(now: start) == .started)
    var lines: [FailureStreak.Line] = []
    // 4 a second for two and a half minutes.
    for tick in 1..<600 {
      if let line = streak.failed(now: start + .milliseconds(250 * tick)) { lines.append(line) }
    }
    #expect(lines == [.continuing(count: 241), .continuing(count: 481)])
    #expect(streak.succeeded() == .ended(count: 600))
    #expect(streak.succeeded() == nil)
    #expect(streak.failed(now: start + .seconds(200)) == .started)
  }
}
