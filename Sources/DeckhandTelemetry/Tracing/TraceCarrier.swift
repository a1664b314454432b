package import Tracing

/// A trace's context as a map (`traceparent`, `tracestate`): what travels
/// with work that runs later or elsewhere, such as a queued job, so that
/// the work joins the trace that asked for it.
package enum TraceCarrier {
  /// At most this many entries are kept, each name at most 64 bytes and
  /// each value at most 512 (a W3C `traceparent` is 55, a `tracestate`
  /// rarely more than a few hundred).
  package static let maxEntries = 8

  /// The current span's context (empty when there is none: outside a span,
  /// or tracing is off).
  package static func current() -> [String: String] {
    guard let context = InstrumentationContext.current else { return [:] }
    var carrier: [String: String] = [:]
    InstrumentationSystem.instrument.inject(context, into: &carrier, using: DictionaryInjector())
    return checked(carrier)
  }

  /// The context `carrier` holds, to start spans under; nil when it holds
  /// none (or tracing is off). `carrier` may come from anywhere: what the
  /// propagator does not accept is ignored.
  package static func context(from carrier: [String: String]) -> InstrumentationContext? {
    guard !carrier.isEmpty else { return nil }
    var context = InstrumentationContext.topLevel
    InstrumentationSystem.instrument.extract(checked(carrier), into: &context, using: DictionaryExtractor())
    return context
  }

  /// `carrier` without oversized entries (names over 64 bytes, values over
  /// 512), and at most ``maxEntries`` of them.
  package static func checked(_ carrier: [String: String]) -> [String: String] {
    var kept: [String: String] = [:]
    for (name, value) in carrier.sorted(by: { $0.key < $1.key })
    where name.utf8.count <= 64 && value.utf8.count <= 512 && kept.count < maxEntries {
      kept[name] = value
    }
    return kept
  }
}

struct DictionaryInjector: Injector {
  func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
    carrier[key] = value
  }
}

struct DictionaryExtractor: Extractor {
  func extract(key: String, from carrier: [String: String]) -> String? {
    carrier[key]
  }
}
