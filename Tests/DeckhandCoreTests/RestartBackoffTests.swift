import DeckhandCore
import Testing

@Suite("Restart backoff")
struct RestartBackoffTests {
  let backoff = RestartBackoff(initial: .seconds(1), maximum: .seconds(60))

  @Test("the nominal delay doubles up to the maximum")
  func doubling() {
    let delays = (0..<9).map { backoff.nominalDelay(attempt: $0) }
    #expect(delays == [1, 2, 4, 8, 16, 32, 60, 60, 60].map { Duration.seconds($0) })
    #expect(backoff.nominalDelay(attempt: 500) == .seconds(60))
  }

  @Test("jitter stays within ±20 % and within the bounds", arguments: [0.0, 0.25, 0.5, 0.999])
  func jitter(random: Double) {
    for attempt in 0..<10 {
      let nominal = backoff.nominalDelay(attempt: attempt)
      let delay = backoff.delay(attempt: attempt, random: random)
      #expect(delay >= .seconds(1) && delay <= .seconds(60))
      #expect(delay >= nominal * 0.8 - .milliseconds(1) && delay <= nominal * 1.2 + .milliseconds(1))
    }
  }

  @Test("different random draws give different delays")
  func spread() {
    #expect(backoff.delay(attempt: 3, random: 0) < backoff.delay(attempt: 3, random: 0.99))
  }
}
