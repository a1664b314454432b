/// The dispatcher's timing rules, from Docker SwarmKit: heartbeats, when a
/// node is DOWN, how agents back off, how often a node may open a session.
package struct ControlPlaneTiming: Hashable, Sendable {
  /// The heartbeat period (5 s).
  package var heartbeatPeriod: Duration = .seconds(5)
  /// The jitter added to or taken from each period (±10 %).
  package var heartbeatJitter = 0.1
  /// Periods without a heartbeat before a node is DOWN (3).
  package var missedHeartbeatsBeforeDown = 3
  /// Heartbeats one server takes a second at most (500; 0: no bound):
  /// past `heartbeatPeriod` × this many nodes, the period grows with the
  /// nodes, as Nomad's `max_heartbeats_per_second` makes its TTLs grow.
  /// Measured with `deckhand-bench dispatcher --agents 10000` (server on
  /// one CPU): 2,000 heartbeats a second took 39 % of it, 1,000 took 29 %
  /// (about 200–285 µs each in all: HTTP/2, TLS and the judging). At 500
  /// a second 10,000 nodes heartbeat every 20 s and are DOWN after 60 s
  /// (Kubernetes: 40–50 s); up to 2,500 nodes keep the 5 s period.
  package var maxHeartbeatsPerSecond = 500.0
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

  /// The heartbeat period for a server holding `nodes` sessions: the
  /// configured one, or longer so that they send at most
  /// ``maxHeartbeatsPerSecond`` in all.
  package func period(nodes: Int) -> Duration {
    guard maxHeartbeatsPerSecond > 0 else { return heartbeatPeriod }
    return max(heartbeatPeriod, .seconds(Double(nodes) / maxHeartbeatsPerSecond))
  }

  /// The period to hand a node with a heartbeat: the period for `nodes`
  /// ± jitter, `random` in 0..<1.
  package func nextPeriod(random: Double, nodes: Int = 0) -> Duration {
    period(nodes: nodes) * (1 + heartbeatJitter * (2 * random - 1))
  }

  /// How long after its last heartbeat a node is DOWN, at the configured
  /// period.
  package var downAfter: Duration { heartbeatPeriod * missedHeartbeatsBeforeDown }

  /// How long after its last heartbeat a node that was given `period` is
  /// DOWN (never sooner than ``downAfter``).
  package func downAfter(given period: Duration) -> Duration {
    max(downAfter, period * missedHeartbeatsBeforeDown)
  }

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
