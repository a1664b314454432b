package import DeckhandCore
internal import Dispatch

/// Runs blocking work (SQLite reads and writes) on threads of its own.
///
/// NIO's event loops are Swift's global executor in `deckhand`, and every
/// connection's I/O runs on them: a reconcile or a listing of 10,000 nodes
/// done there held up the heartbeats of every agent on that loop (seconds
/// of delay at 10,000 agents). Heartbeats stay on the loops: they touch
/// memory only.
enum BlockingWork {
  private static let queue = DispatchQueue(label: "deckhand.blocking-work", attributes: .concurrent)

  /// `body`'s result, computed on a blocking-work thread.
  static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
      queue.async { continuation.resume(with: Result { try body() }) }
    }
  }
}
