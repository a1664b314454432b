import DeckhandServer
import Testing

@Suite("SignalHub: wake-ups by key")
struct SignalHubTests {
  @Test("a signal wakes the watchers of its key only")
  func wakesByKey() async {
    let hub = SignalHub<String>()
    let (a, tokenA) = hub.watch("a")
    let (b, tokenB) = hub.watch("b")
    defer {
      hub.unwatch("a", tokenA)
      hub.unwatch("b", tokenB)
    }
    hub.signal("a")
    var iteratorA = a.makeAsyncIterator()
    #expect(await iteratorA.next() != nil)
    // b got nothing: its wait runs out.
    let clock = ContinuousClock()
    let waited = await clock.measure { await b.next(orAfter: .milliseconds(50)) }
    #expect(waited >= .milliseconds(50))
  }

  @Test("close ends every stream, and closed(orAfter:) returns at once instead of sleeping out")
  func close() async {
    let hub = SignalHub<String>()
    let (stream, _) = hub.watch("x")
    let clock = ContinuousClock()
    async let waited = clock.measure { await hub.closed(orAfter: .seconds(30)) }
    hub.close()
    var iterator = stream.makeAsyncIterator()
    #expect(await iterator.next() == nil)
    #expect(await waited < .seconds(10))
    #expect(hub.isClosed)
    // Watching after close: already finished.
    let (late, _) = hub.watch("y")
    var lateIterator = late.makeAsyncIterator()
    #expect(await lateIterator.next() == nil)
  }
}
