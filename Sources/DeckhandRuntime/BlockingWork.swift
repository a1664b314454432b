internal import NIOPosix

/// Runs blocking work (SQLite, tar, file reads and writes, waiting on a
/// process) on a bounded pool of threads of its own: the one place such
/// work runs in `deckhand`, on the server as on the agent.
///
/// NIO's event loops are Swift's global executor in `deckhand`, and every
/// connection's I/O runs on them: a reconcile or a listing of 10,000 nodes
/// done there held up the heartbeats of every agent on that loop (seconds
/// of delay at 10,000 agents). The pool is NIO's `NIOThreadPool` (as
/// Hummingbird's `FileIO` uses), bounded at ``threadCount`` threads: GRDB
/// lets 5 readers and one writer into a database at once, so more threads
/// would only wait on its locks, and the unbounded queue this replaces grew
/// a thread for every waiting caller.
package enum BlockingWork {
  /// How many threads the pool has.
  package static let threadCount = 16

  private static let pool: NIOThreadPool = {
    let pool = NIOThreadPool(numberOfThreads: threadCount)
    pool.start()
    return pool
  }()

  /// `body`'s result, computed on a thread of the pool; the caller
  /// suspends meanwhile.
  package static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await pool.runIfActive(body)
  }
}
