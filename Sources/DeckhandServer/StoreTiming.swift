package import DeckhandTelemetry
internal import Prometheus
internal import Synchronization

/// Times a store's transactions for ``ServerMetrics`` once
/// ``attach(_:store:)`` gave it a registry; until then it only runs them.
package final class StoreTiming: Sendable {
  /// What a timed call was.
  enum Kind: String, CaseIterable {
    /// A read (SQLite's reader pool).
    case read
    /// A write transaction (SQLite; one of a group commit).
    case write
    /// One statement in its own transaction (PostgreSQL).
    case statement
    /// A transaction of several statements (PostgreSQL).
    case transaction
  }

  private let histograms = Mutex<[Kind: DurationHistogram]>([:])

  package init() {}

  /// Times every later call into `registry`, labelled `store` (`sqlite`
  /// or `postgres`) and the call's ``Kind`` (those the store makes).
  package func attach(_ registry: MetricsRegistry, store: String) {
    var made: [Kind: DurationHistogram] = [:]
    for kind in store == "sqlite" ? [Kind.read, .write] : [.statement, .transaction] {
      made[kind] = registry.durations(
        "store_transaction_duration_seconds", "Time the server's store took for a read, write or transaction.",
        labels: [("store", store), ("kind", kind.rawValue)])
    }
    histograms.withLock { $0 = made }
  }

  /// Runs `body`, timing it as a `kind`.
  func measure<T>(_ kind: Kind, _ body: () async throws -> T) async rethrows -> T {
    guard let histogram = histograms.withLock({ $0[kind] }) else { return try await body() }
    let start = ContinuousClock.now
    defer { histogram.record(start.duration(to: .now)) }
    return try await body()
  }
}
