/// The decisions of a plugin supervisor, without I/O: each method takes what
/// happened and returns what to do. The supervisor in `DeckhandPluginHost`
/// carries the actions out.
///
/// ```
/// idle ─start→ launching ─ready→ running ─exit→ backingOff ─elapsed→ launching
///                  │                 └─unhealthy→ terminating ─exit→ backingOff
///                  └─failed→ backingOff          any ─stop→ stopping ─exit→ stopped
/// ```
package struct SupervisorStateMachine: Sendable {
  package typealias Instant = ContinuousClock.Instant

  /// Where the supervisor is.
  package enum State: Hashable, Sendable {
    case idle
    case launching
    case running
    /// Killing an unhealthy plugin; a restart follows its exit.
    case terminating
    case backingOff
    case stopping
    case stopped
  }

  /// What the I/O layer must do next.
  package enum Action: Hashable, Sendable {
    /// Launch the plugin. `attempt` counts restarts since the last reset.
    case launch(attempt: Int)
    /// Wait `delay`, then call ``backoffElapsed()``.
    case restart(after: Duration, attempt: Int)
    /// Kill the unhealthy plugin's process group, then report its exit.
    case killUnhealthy(failures: Int)
    /// Send StopRequest with this deadline, then report the reply or the
    /// deadline.
    case sendStop(deadline: Duration)
    /// Kill the plugin's whole process group.
    case killGroup
    /// Supervision is over.
    case finish
    /// Nothing to do.
    case none
  }

  /// What one health check meant.
  package enum HealthVerdict: Hashable, Sendable {
    /// Healthy, as before.
    case healthy
    /// Healthy for the first time since launch or since failures.
    case becameHealthy
    /// A failure, `count` in a row, below the threshold.
    case failed(count: Int)
    /// `count` failures in a row: the plugin is unhealthy and is killed.
    case unhealthy(count: Int)
    /// The check came when no plugin was running; ignore it.
    case ignored
  }

  /// How long a plugin must stay healthy before the backoff starts again
  /// from its initial delay.
  package static let backoffResetAfter: Duration = .seconds(300)

  package private(set) var state: State = .idle
  /// Restarts in a row since the last reset; the next delay grows with it.
  package private(set) var attempt = 0
  /// Failed health checks in a row.
  package private(set) var consecutiveFailures = 0
  /// Whether a stop has been asked for.
  package private(set) var stopRequested = false

  private let backoff: RestartBackoff
  private let failureThreshold: Int
  private let stopDeadline: Duration
  private var healthySince: Instant?
  private var reportedHealthy = false

  package init(backoff: RestartBackoff, failureThreshold: Int, stopDeadline: Duration) {
    self.backoff = backoff
    self.failureThreshold = max(1, failureThreshold)
    self.stopDeadline = stopDeadline
  }

  /// Builds the state machine a manifest asks for.
  package init(manifest: PluginManifest) {
    self.init(
      backoff: RestartBackoff(initial: manifest.restart.initialBackoff, maximum: manifest.restart.maxBackoff),
      failureThreshold: manifest.health.failures,
      stopDeadline: manifest.timeouts.stop
    )
  }

  /// Supervision begins.
  package mutating func start() -> Action {
    guard state == .idle else { return .none }
    state = .launching
    return .launch(attempt: attempt)
  }

  /// The plugin launched and answered its first call.
  package mutating func ready(now: Instant) -> Action {
    guard state == .launching else { return .none }
    state = .running
    consecutiveFailures = 0
    healthySince = now
    reportedHealthy = false
    return .none
  }

  /// The launch failed (spawn, handshake, start timeout or Start error).
  package mutating func launchFailed(random: Double) -> Action {
    guard state == .launching else { return .none }
    return scheduleRestart(random: random)
  }

  /// A health check finished.
  package mutating func healthChecked(ok: Bool, now: Instant) -> HealthVerdict {
    guard state == .running else { return .ignored }
    if ok {
      let wasFailing = consecutiveFailures > 0 || !reportedHealthy
      consecutiveFailures = 0
      reportedHealthy = true
      if healthySince == nil { healthySince = now }
      return wasFailing ? .becameHealthy : .healthy
    }
    consecutiveFailures += 1
    healthySince = nil
    reportedHealthy = false
    if consecutiveFailures >= failureThreshold {
      state = .terminating
      return .unhealthy(count: consecutiveFailures)
    }
    return .failed(count: consecutiveFailures)
  }

  /// The action for an ``HealthVerdict/unhealthy(count:)`` verdict.
  package func actionForUnhealthy() -> Action {
    state == .terminating ? .killUnhealthy(failures: consecutiveFailures) : .none
  }

  /// The plugin's process exited (or was killed).
  package mutating func exited(now: Instant, random: Double) -> Action {
    switch state {
    case .stopping:
      state = .stopped
      return .finish
    case .running, .terminating, .launching:
      if let healthySince, healthySince.duration(to: now) >= Self.backoffResetAfter {
        attempt = 0
      }
      healthySince = nil
      return scheduleRestart(random: random)
    case .idle, .backingOff, .stopped:
      return .none
    }
  }

  /// The backoff delay ran out.
  package mutating func backoffElapsed() -> Action {
    guard state == .backingOff else { return .none }
    if stopRequested {
      state = .stopped
      return .finish
    }
    state = .launching
    return .launch(attempt: attempt)
  }

  /// The operator asked to stop the plugin.
  package mutating func requestStop() -> Action {
    stopRequested = true
    switch state {
    case .idle, .backingOff:
      state = .stopped
      return .finish
    case .launching, .running:
      state = .stopping
      return .sendStop(deadline: stopDeadline)
    case .terminating:
      // The kill under way ends it; its exit finishes supervision.
      state = .stopping
      return .none
    case .stopping, .stopped:
      return .none
    }
  }

  /// The plugin answered StopRequest, or failed to.
  package mutating func stopReplied() -> Action {
    state == .stopping ? .killGroup : .none
  }

  /// The Stop deadline passed without a reply.
  package mutating func stopDeadlineExpired() -> Action {
    state == .stopping ? .killGroup : .none
  }

  private mutating func scheduleRestart(random: Double) -> Action {
    if stopRequested {
      state = .stopped
      return .finish
    }
    let delay = backoff.delay(attempt: attempt, random: random)
    let thisAttempt = attempt
    attempt += 1
    state = .backingOff
    return .restart(after: delay, attempt: thisAttempt)
  }
}
