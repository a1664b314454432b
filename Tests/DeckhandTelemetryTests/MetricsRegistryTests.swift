import DeckhandTelemetry
import Prometheus
import Testing

@Suite("MetricsRegistry: prefixed families with help, gauges set at scrape time")
struct MetricsRegistryTests {
  @Test("families carry the deckhand_ prefix, help and type; collectors run before each scrape")
  func scrapeRunsCollectors() async {
    let registry = MetricsRegistry()
    let counter = registry.counter("things_total", "Things that happened.")
    counter.increment(by: Int64(3))
    let calls = Counted()
    registry.onScrape {
      await calls.add()
      registry.gauge("now", "A gauge set when scraped.").set(Double(await calls.count))
    }
    let first = String(decoding: await registry.scrape(), as: UTF8.self)
    #expect(first.contains("# HELP deckhand_things_total Things that happened.\n"))
    #expect(first.contains("# TYPE deckhand_things_total counter\n"))
    #expect(first.contains("deckhand_things_total 3\n"))
    #expect(first.contains("deckhand_now 1.0\n"))
    let second = String(decoding: await registry.scrape(), as: UTF8.self)
    #expect(second.contains("deckhand_now 2.0\n"))
  }

  @Test("durations are histograms in seconds")
  func durationsInSeconds() async {
    let registry = MetricsRegistry()
    registry.durations("wait_seconds", "A wait.").record(.milliseconds(3))
    let text = String(decoding: await registry.scrape(), as: UTF8.self)
    #expect(text.contains("# TYPE deckhand_wait_seconds histogram"))
    #expect(text.contains(#"deckhand_wait_seconds_bucket{le="0.0025"} 0"#))
    #expect(text.contains(#"deckhand_wait_seconds_bucket{le="0.005"} 1"#))
    #expect(text.contains("deckhand_wait_seconds_sum 0.003"))
  }

  actor Counted {
    var count = 0
    func add() { count += 1 }
  }
}
