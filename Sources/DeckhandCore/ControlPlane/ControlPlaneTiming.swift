/// The dispatcher's timing rules, from Docker SwarmKit: heartbeats, when a
/// node is DOWN, how agents back off, how often a node may open a session.
package struct ControlPlaneTiming: Hashable, Sendable {
  /// The heartbeat period (5 s).
  package var heartbeatPeriod: Duration = .seconds(5)
  /// The jitter added to or taken from each period (±10 %).
  package var heartbeatJitter = 0.1
  /// Periods without a heartbeat before a node is DOWN (3).
  package var missedHeartbeatsBeforeDown = 3
  /// At most this many sessions per node in ``sessionWindow`` (3 in 8 s).
  package var sessionsPerWindow = 3
  package var sessionWindow: Duration = .seconds(8)
  /// Agent reconnect backoff: min(base + 2 × previous, cap), full jitter.
  package var reconnectBase: Duration = .milliseconds(100)
  package var reconnectCap: Duration = .seconds(8)
  /// Assignment batching: send after this quiet time, or at once when this
  /// many changes wait.
  package var assignmentDebounce: Duration = .milliseconds(100)
  package var assignmentBatch = 100

  package init() {}

  /// The SwarmKit defaults with another heartbeat period (tests shorten it).
  package init(heartbeatPeriod: Duration) {
    self.heartbeatPeriod = heartbeatPeriod
  }

  /// The period to hand a node with a heartbeat: the period ± jitter,
  /// `random` in 0..<1.
  package func nextPeriod(random: Double) -> Duration {
    heartbeatPeriod * (1 + heartbeatJitter * (2 * random - 1))
  }

  /// How long after its last heartbeat a node is DOWN.
  package var downAfter: Duration { heartbeatPeriod * missedHeartbeatsBeforeDown }

  /// The upper bound of the next reconnect wait after `previous`; the
  /// agent sleeps a random time up to it (full jitter).
  package func reconnectBound(after previous: Duration) -> Duration {
    min(reconnectBase + previous * 2, reconnectCap)
  }
}

/// Counts a node's session openings: more than the limit in the window is
/// refused, and the node is told to back off.
package struct SessionRateLimiter: Sendable {
  private var openings: [String: [ContinuousClock.Instant]] = [:]
  let limit: Int
  let window: Duration

  package init(timing: ControlPlaneTiming) {
    limit = timing.sessionsPerWindow
    window = timing.sessionWindow
  }

  /// Records an opening for `node` at `now`; false if it is one too many.
  package mutating func allow(_ node: String, now: ContinuousClock.Instant) -> Bool {
    var recent = (openings[node] ?? []).filter { now - $0 < window }
    guard recent.count < limit else {
      openings[node] = recent
      return false
    }
    recent.append(now)
    openings[node] = recent
    return true
  }
}
