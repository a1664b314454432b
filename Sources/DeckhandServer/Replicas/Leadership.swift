package import DeckhandCore
internal import Foundation
package import Logging
internal import PostgresNIO
internal import Synchronization

/// Which replica does the work that must run once (reconcile, the sweep
/// of nodes no replica holds, job expiry and pruning): the one holding a
/// PostgreSQL advisory lock, on a connection of its own. When that replica
/// dies, its connection closes, PostgreSQL releases the lock, and another
/// replica takes it within ``retry``. With SQLite there is one server,
/// always the leader.
package final class Leadership: Sendable {
  private let store: PostgresServerStore?
  private let logger: Logger
  private let leading: Atomic<Bool>
  /// How often a follower tries to take the lock, and the leader checks
  /// that it still holds it.
  static let retry: Duration = .seconds(1)
  /// The lock's key ("dh-lead" in ASCII).
  static let key: Int64 = 0x6468_2D6C_6561_64

  package init(store: PostgresServerStore?, logger: Logger) {
    self.store = store
    self.logger = logger
    leading = Atomic(store == nil)
  }

  /// Whether this replica leads now.
  package var isLeader: Bool { leading.load(ordering: .relaxed) }

  /// Tries to lead until cancelled; `changed` is called when this replica
  /// starts or stops leading.
  package func run(changed: @escaping @Sendable (Bool) -> Void) async {
    guard let store else { return }
    while !Task.isCancelled {
      do {
        try await store.withOwnConnection { connection in
          while !Task.isCancelled {
            var held = false
            for try await row in try await connection.query(
              "SELECT pg_try_advisory_lock(\(Self.key))", logger: logger)
            {
              held = try row.decode(Bool.self)
            }
            if held { break }
            try await Task.sleep(for: Self.retry)
          }
          leading.store(true, ordering: .relaxed)
          logger.notice("this replica leads (reconcile, sweeps, job expiry)")
          changed(true)
          // The lock lives as long as this connection: a query a second
          // notices when it is gone.
          while !Task.isCancelled {
            try await Task.sleep(for: Self.retry)
            try await connection.query("SELECT 1", logger: logger)
          }
        }
      } catch {
        if Task.isCancelled { break }
        logger.warning("leadership: \(error)")
      }
      if leading.exchange(false, ordering: .relaxed) {
        logger.warning("this replica no longer leads")
        changed(false)
      }
      try? await Task.sleep(for: Self.retry)
    }
  }
}
