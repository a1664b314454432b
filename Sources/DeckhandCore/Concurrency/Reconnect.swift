internal import Synchronization

/// Runs `attempt` again and again until it says it is done or the task is
/// cancelled, waiting after each attempt a random time up to
/// min(base + 2 × previous bound, cap) (SwarmKit's reconnect backoff,
/// full jitter: ``ControlPlaneTiming/reconnectBound(after:)``). The bound
/// starts again from zero after an attempt that called `connected` and
/// lasted at least `connectedFor`, or that lasted longer than
/// `healthyAfter`: one bad moment after a long healthy session does not
/// wait long, and a peer that accepts and fails at once (a server whose
/// disk is full) is not retried in a tight loop.
///
/// The one reconnect loop in Deckhand (the agent's session, its runner
/// streams, its first join).
///
/// - Parameters:
///   - attempt: one try; returns true when there is nothing more to do.
///     It gets a function to call once it is connected.
///   - failed: told about each attempt's error (not cancellation).
package func reconnecting(
  timing: ControlPlaneTiming, healthyAfter: Duration = .seconds(30), connectedFor: Duration = .seconds(2),
  _ attempt: (_ connected: @escaping @Sendable () -> Void) async throws -> Bool,
  failed: (any Error) -> Void
) async {
  var bound: Duration = .zero
  while !Task.isCancelled {
    let started = ContinuousClock.now
    let connected = ConnectedSignal()
    do {
      if try await attempt({ connected.set() }) { return }
    } catch is CancellationError {
      return
    } catch {
      if Task.isCancelled { return }
      failed(error)
    }
    let lasted = started.duration(to: .now)
    if (connected.isSet && lasted >= connectedFor) || lasted > healthyAfter { bound = .zero }
    bound = timing.reconnectBound(after: bound)
    try? await Task.sleep(for: bound * Double.random(in: 0...1))
  }
}

/// Set once an attempt connected (from any of its tasks).
private final class ConnectedSignal: Sendable {
  private let flag = Atomic(false)
  func set() { flag.store(true, ordering: .relaxed) }
  var isSet: Bool { flag.load(ordering: .relaxed) }
}
