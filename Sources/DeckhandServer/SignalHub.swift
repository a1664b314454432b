package import DeckhandCore
package import Foundation
internal import Synchronization

/// Wake-ups by key: whoever watches a key gets a stream that yields when
/// something about it may have changed (a node's assignments, a job, the
/// queue). Signals coalesce: a slow watcher sees one wake-up for many
/// changes and reads the current state itself.
package final class SignalHub<Key: Hashable & Sendable>: Sendable {
  private struct State {
    var watchers: [Key: [UUID: AsyncStream<Void>.Continuation]] = [:]
    /// Waits in ``closed(orAfter:)``.
    var closeWatchers: [UUID: AsyncStream<Void>.Continuation] = [:]
    var closed = false
  }
  private let state = Mutex(State())

  package init() {}

  /// A stream for `key`, and the token that ends it with ``unwatch(_:_:)``.
  /// After ``close()`` the stream is already finished.
  package func watch(_ key: Key) -> (AsyncStream<Void>, UUID) {
    let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    let token = UUID()
    let closed = state.withLock { state in
      if !state.closed { state.watchers[key, default: [:]][token] = continuation }
      return state.closed
    }
    if closed { continuation.finish() }
    return (stream, token)
  }

  package func unwatch(_ key: Key, _ token: UUID) {
    let continuation = state.withLock { state -> AsyncStream<Void>.Continuation? in
      let continuation = state.watchers[key]?.removeValue(forKey: token)
      if state.watchers[key]?.isEmpty == true { state.watchers[key] = nil }
      return continuation
    }
    continuation?.finish()
  }

  /// Wakes the watchers of `keys`.
  package func signal(_ keys: some Sequence<Key>) {
    let continuations = state.withLock { state in
      keys.flatMap { state.watchers[$0].map { Array($0.values) } ?? [] }
    }
    for continuation in continuations { continuation.yield() }
  }

  package func signal(_ key: Key) { signal(CollectionOfOne(key)) }

  /// Ends every stream, now and later (shutdown).
  package func close() {
    let all = state.withLock { state in
      state.closed = true
      defer {
        state.watchers = [:]
        state.closeWatchers = [:]
      }
      return state.watchers.values.flatMap(\.values) + state.closeWatchers.values
    }
    for continuation in all { continuation.finish() }
  }

  /// Whether ``close()`` was called.
  package var isClosed: Bool { state.withLock { $0.closed } }

  /// Sleeps `timeout`, or less if the hub is closed meanwhile (the
  /// server's periodic loops wait with it, so shutdown need not wait for
  /// their next turn).
  package func closed(orAfter timeout: Duration) async {
    let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
    let token = UUID()
    let closed = state.withLock { state in
      if !state.closed { state.closeWatchers[token] = continuation }
      return state.closed
    }
    guard !closed else { return }
    await stream.next(orAfter: timeout)
    state.withLock { _ = $0.closeWatchers.removeValue(forKey: token) }
  }
}

extension AsyncStream where Element == Void {
  /// Waits for the next signal or for `timeout`, whichever comes first.
  package func next(orAfter timeout: Duration) async {
    _ = await firstResult(within: timeout) { () async -> Void? in
      for await _ in self { return () }
      return nil
    }
  }
}
