internal import Foundation

/// Polls `condition` until it holds or `timeout` passes.
package func eventually(timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
  let end = ContinuousClock.now + timeout
  while ContinuousClock.now < end {
    if condition() { return true }
    try? await Task.sleep(for: .milliseconds(20))
  }
  return condition()
}

/// Polls an asynchronous `condition` (a CLI call, say) every 100 ms until
/// it holds or `timeout` passes.
package func eventually(timeout: Duration = .seconds(10), _ condition: () async -> Bool) async -> Bool {
  let end = ContinuousClock.now + timeout
  while ContinuousClock.now < end {
    if await condition() { return true }
    try? await Task.sleep(for: .milliseconds(100))
  }
  return await condition()
}
