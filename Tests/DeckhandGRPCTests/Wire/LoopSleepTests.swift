import Testing

@testable import DeckhandGRPC

@Suite("LoopSleep: sleeping on an event loop's timer")
struct LoopSleepTests {
  @Test("sleeps at least as long as asked")
  func sleepsLongEnough() async throws {
    let begin = ContinuousClock.now
    try await LoopSleep.sleep(for: .milliseconds(20))
    #expect(begin.duration(to: .now) >= .milliseconds(20))
  }

  @Test("a cancelled sleep ends at once with CancellationError, as Task.sleep does")
  func cancellation() async throws {
    let begin = ContinuousClock.now
    let sleeper = Task { try await LoopSleep.sleep(for: .seconds(30)) }
    try await Task.sleep(for: .milliseconds(20))
    sleeper.cancel()
    await #expect(throws: CancellationError.self) { try await sleeper.value }
    #expect(begin.duration(to: .now) < .seconds(10))

    let already = Task {
      withUnsafeCurrentTask { $0?.cancel() }
      try await LoopSleep.sleep(for: .seconds(30))
    }
    await #expect(throws: CancellationError.self) { try await already.value }
    #expect(begin.duration(to: .now) < .seconds(10))
  }
}
