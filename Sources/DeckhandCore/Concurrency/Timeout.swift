/// `body`'s result, or nil if `timeout` passes first; whichever loses is
/// cancelled. The one "this or a timeout" race in Deckhand: every wait
/// with a deadline goes through it.
///
/// ```swift
/// let exit = await firstResult(within: .seconds(5)) { await process.waitForExit() }
/// ```
package func firstResult<T: Sendable>(
  within timeout: Duration, _ body: @escaping @Sendable () async -> T?
) async -> T? {
  await withTaskGroup(of: T?.self) { group in
    group.addTask { await body() }
    group.addTask {
      try? await Task.sleep(for: timeout)
      return nil
    }
    let first = await group.next() ?? nil
    group.cancelAll()
    return first
  }
}
