package import Prometheus
internal import Synchronization

/// A process's metrics: swift-prometheus's registry, and the collectors
/// that set gauges from live state just before each scrape.
///
/// Counters and histograms are updated where things happen; a count of
/// what exists now (nodes by status, plugins by state) is read when
/// Prometheus asks, so an idle process does no work for its metrics.
/// Every name carries the `deckhand_` prefix and every family has help
/// text (`promtool check metrics` asks for both).
package final class MetricsRegistry: Sendable {
  package let prometheus = PrometheusCollectorRegistry()
  private let collectors = Mutex<[@Sendable () async -> Void]>([])

  package init() {}

  /// Runs `collect` before every scrape (it sets gauges; it must not
  /// throw or wait long: the scrape waits for it).
  package func onScrape(_ collect: @escaping @Sendable () async -> Void) {
    collectors.withLock { $0.append(collect) }
  }

  /// Runs the collectors, then renders every family in the Prometheus
  /// text format (0.0.4).
  package func scrape() async -> [UInt8] {
    for collect in collectors.withLock({ $0 }) { await collect() }
    return prometheus.emitToBuffer()
  }

  package func counter(_ name: String, _ help: String, labels: [(String, String)] = []) -> Counter {
    prometheus.makeCounter(name: "deckhand_" + name, labels: labels, help: help)
  }

  package func gauge(_ name: String, _ help: String, labels: [(String, String)] = []) -> Gauge {
    prometheus.makeGauge(name: "deckhand_" + name, labels: labels, help: help)
  }

  /// A histogram of durations, in seconds.
  package func durations(
    _ name: String, _ help: String, labels: [(String, String)] = [], buckets: [Duration] = MetricsRegistry.latency
  ) -> DurationHistogram {
    prometheus.makeDurationHistogram(name: "deckhand_" + name, labels: labels, buckets: buckets, help: help)
  }

  /// Buckets for calls and handling times: 100 µs to 10 s.
  package static let latency: [Duration] = [
    .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
    .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
    .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
  ]

  /// Buckets for work that takes seconds to hours (a job's run).
  package static let long: [Duration] = [
    .milliseconds(10), .milliseconds(100), .seconds(1), .seconds(10), .seconds(60), .seconds(300),
    .seconds(1800), .seconds(3600), .seconds(6 * 3600),
  ]
}
