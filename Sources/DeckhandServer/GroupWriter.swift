package import DeckhandCore
internal import DeckhandRuntime
internal import Dispatch
internal import GRDB
internal import Synchronization

/// Group commit for SQLite: writes submitted while a transaction runs wait
/// for it, then share the next one. Each write runs in a savepoint of its
/// own (a failing write rolls back alone), and its caller resumes only
/// after the shared transaction committed.
///
/// SQLite commits one transaction at a time, and each commit appends its
/// changed pages to the WAL: a no-op job took four commits, and with many
/// runners and clients at once the commits, not the statements, were the
/// server's largest cost. Callers suspend instead of blocking a thread.
final class GroupWriter: Sendable {
  private struct Operation: Sendable {
    /// Runs the write; returns what resumes its caller after the commit.
    let run: @Sendable (Database) -> @Sendable () -> Void
    /// Resumes its caller with an error (the transaction failed).
    let fail: @Sendable (any Error) -> Void
  }

  private struct State {
    var operations: [Operation] = []
    var draining = false
  }

  private let database: DatabasePool
  /// The state directory, for errors.
  private let directory: String
  private let state = Mutex(State())
  private let queue = DispatchQueue(label: "deckhand.store.group-writer")
  /// The most writes one transaction takes.
  static let batchLimit = 256

  init(database: DatabasePool, directory: String) {
    self.database = database
    self.directory = directory
  }

  /// Runs `body` in the next shared transaction; returns its result once
  /// that transaction committed.
  func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
    let directory = self.directory
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
      submit(
        Operation(
          run: { db in
            let outcome: Result<T, any Error>
            do {
              var value: T?
              try db.inSavepoint {
                value = try body(db)
                return .commit
              }
              outcome = .success(value!)
            } catch {
              outcome = .failure(StorageFailure.describe(error, directory: directory))
            }
            return { continuation.resume(with: outcome) }
          },
          fail: { continuation.resume(throwing: $0) }))
    }
  }

  private func submit(_ operation: Operation) {
    let start = state.withLock { state in
      state.operations.append(operation)
      if state.draining { return false }
      state.draining = true
      return true
    }
    if start { queue.async { self.drain() } }
  }

  private func drain() {
    while true {
      let batch = state.withLock { state -> [Operation] in
        let batch = Array(state.operations.prefix(Self.batchLimit))
        state.operations.removeFirst(batch.count)
        if batch.isEmpty { state.draining = false }
        return batch
      }
      guard !batch.isEmpty else { return }
      var completions: [@Sendable () -> Void] = []
      do {
        try database.write { db in completions = batch.map { $0.run(db) } }
      } catch {
        let error = StorageFailure.describe(error, directory: directory)
        for operation in batch { operation.fail(error) }
        continue
      }
      for completion in completions { completion() }
    }
  }
}
