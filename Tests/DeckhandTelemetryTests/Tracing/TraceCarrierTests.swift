import InMemoryTracing
import Testing
import Tracing

@testable import DeckhandTelemetry

@Suite("TraceCarrier: a trace's context kept with work that runs later")
struct TraceCarrierTests {
  @Test("outside a span (or with tracing off) there is nothing to carry, and nothing to continue")
  func nothing() {
    #expect(TraceCarrier.current().isEmpty)
    #expect(TraceCarrier.context(from: [:]) == nil)
  }

  @Test("what a span's context gives back continues its trace: a span started under it is its child")
  func roundTrip() async throws {
    let tracer = InMemoryTracer()
    try await withTracer(tracer) {
      let (carrier, parent) = withSpan("queue") { span in
        (TraceCarrier.current(), span.context.inMemorySpanContext)
      }
      #expect(!carrier.isEmpty)
      let context = try #require(TraceCarrier.context(from: carrier))
      withSpan("run", context: context) { _ in }
      let run = try #require(tracer.finishedSpans.first { $0.operationName == "run" })
      #expect(run.spanContext.traceID == parent?.traceID)
      #expect(run.spanContext.parentSpanID == parent?.spanID)
    }
  }

  @Test("a carrier from outside keeps at most 8 entries of bounded size")
  func bounded() {
    var hostile: [String: String] = [:]
    for index in 0..<100 { hostile["key\(index)"] = "value" }
    hostile["long"] = String(repeating: "v", count: 513)
    hostile[String(repeating: "k", count: 65)] = "v"
    let kept = TraceCarrier.checked(hostile)
    #expect(kept.count == TraceCarrier.maxEntries)
    #expect(kept["long"] == nil)
    #expect(kept.keys.allSatisfy { $0.utf8.count <= 64 })
    #expect(TraceCarrier.checked(["traceparent": "00-a-b-01"]) == ["traceparent": "00-a-b-01"])
  }
}
