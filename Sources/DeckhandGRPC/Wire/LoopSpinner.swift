package import NIOCore

#if canImport(Glibc)
  internal import Glibc
#endif

/// Keeps an event loop polling its sockets for a short while instead of
/// going to sleep, so that an answer expected within microseconds is read
/// without a wake-up.
///
/// On a VM a sleeping thread is woken through the hypervisor, which costs
/// tens of microseconds per wake-up, and a call between two processes has
/// two of them; Go's runtime avoids most of them the same way (its threads
/// spin before they park). Measured on the plugin benchmark: sequential
/// calls take half the time, for about the same CPU per call (the CPU that
/// spins is CPU that would otherwise go into sleeping and waking).
///
/// How long to spin follows what the connection sees (``Policy/adaptive``):
/// each ``keepAwake()`` is matched with the next ``arrived()``, and the
/// budget is twice the recent waits, between a floor and a ceiling. A fixed
/// budget (100 µs before) was too short where a round trip takes longer
/// (measured elsewhere: 190 µs), so every call paid the wake-ups after all.
/// Waits longer than the ceiling (an idle connection) do not count; after
/// ``idleMisses`` of them in a row the loop does not spin at all until a
/// short wait is seen again, so an idle connection costs nothing and a busy
/// one at most the ceiling per call. The connections call it only where a
/// wait is worth it: a client with one call in flight, a server whose
/// caller makes one call at a time (with calls in parallel the loop is
/// busy anyway, and on two cores a spin takes the core the other side
/// needs: 16 callers went from 28,500 to 17,100 calls/s when it spun).
///
/// A spin needs a core of its own. Where the machine is busy (another
/// process wants the core), an adaptive spinner backs off: a turn that
/// comes back more than ``preemptedGap`` late means the thread was taken
/// off the core it spun on, and spinning pauses (``firstPause``, doubling
/// to ``longestPause`` while spins keep being cut short; a spin that runs
/// its course clears it). Measured with a `yes` process on one of the two
/// cores: sequential GetStatus p50 600 µs spinning, 60 µs not (a wake-up
/// on a busy core is cheap: there is no idle core to wake through the
/// hypervisor), against go-plugin's 100–120 µs; idle, spinning gives
/// 66–72 µs and not spinning 128–132 µs.
///
/// While it spins, the loop still serves every socket and task: each turn
/// is a timer a microsecond away, which makes the loop poll its sockets and
/// come back. Runs on its loop only.
package final class LoopSpinner {
  /// How long the loop spins after ``keepAwake()``.
  package enum Policy: Sendable, Hashable {
    /// Always this long (zero: never).
    case fixed(Duration)
    /// Twice the recent waits, from `floor` to `ceiling`.
    case adaptive(floor: Duration, ceiling: Duration)

    /// `DECKHAND_GRPC_SPIN_US` microseconds, fixed, if set (0 turns
    /// spinning off); else adaptive from 20 µs to 500 µs.
    package static let `default`: Policy = {
      if let text = getenv("DECKHAND_GRPC_SPIN_US").map({ String(cString: $0) }), let us = Int64(text), us >= 0 {
        return .fixed(.microseconds(us))
      }
      return .adaptive(floor: .microseconds(20), ceiling: .microseconds(500))
    }()
  }

  /// Waits over the ceiling in a row after which spinning stops.
  package static let idleMisses = 8
  /// A spin turn this much later than it asked (a microsecond) was kept off
  /// the core: the loop's own work between two turns takes microseconds,
  /// a wake-up through the hypervisor tens of them.
  package static let preemptedGap = TimeAmount.microseconds(200)
  /// How long an adaptive spinner stops spinning after a spin was cut
  /// short, doubling up to ``longestPause`` while they keep being cut.
  package static let firstPause = TimeAmount.milliseconds(10)
  package static let longestPause = TimeAmount.seconds(1)

  private let eventLoop: any EventLoop
  private let policy: Policy
  private var until = NIODeadline.distantPast
  private var spinning = false
  /// When ``keepAwake()`` last asked, until the next ``arrived()``.
  private var armedAt: NIODeadline?
  /// The recent waits, smoothed (nanoseconds); starts at 50 µs.
  private var averageWait: Int64 = 50_000
  private var misses = 0
  /// The current pause after a preempted spin (zero: none), and its end.
  private var pause = TimeAmount.zero
  private var pausedUntil = NIODeadline.distantPast

  package init(eventLoop: any EventLoop, policy: Policy) {
    self.eventLoop = eventLoop
    self.policy = policy
  }

  /// Whether the loop is being kept awake.
  package var isSpinning: Bool { spinning }

  /// Whether spinning is paused because a spin was taken off the core.
  package var isPaused: Bool { NIODeadline.now() < pausedUntil }

  /// How long the next ``keepAwake()`` spins.
  package var budget: TimeAmount {
    switch policy {
    case .fixed(let budget):
      return TimeAmount(budget)
    case .adaptive(let floor, let ceiling):
      guard misses < Self.idleMisses else { return .zero }
      let wanted = 2 * averageWait
      return .nanoseconds(min(max(wanted, TimeAmount(floor).nanoseconds), TimeAmount(ceiling).nanoseconds))
    }
  }

  /// Spins for ``budget`` from now, expecting an ``arrived()`` within it.
  package func keepAwake() {
    let now = NIODeadline.now()
    armedAt = now
    let budget = self.budget
    guard budget > .zero, now >= pausedUntil else { return }
    until = now + budget
    guard !spinning else { return }
    spinning = true
    turn(askedAt: now)
  }

  /// What the spin waits for came (a read on the connection): the wait
  /// since ``keepAwake()`` tunes the next budget.
  package func arrived() {
    guard let armedAt, case .adaptive(_, let ceiling) = policy else { return }
    self.armedAt = nil
    let waited = (NIODeadline.now() - armedAt).nanoseconds
    if waited > TimeAmount(ceiling).nanoseconds {
      misses += 1
    } else {
      misses = 0
      averageWait += (waited - averageWait) / 4
    }
  }

  private func turn(askedAt: NIODeadline) {
    let bound = NIOLoopBound(self, eventLoop: eventLoop)
    // Not an immediate task: NIO runs those until none is left before it
    // looks at its sockets, so one that put itself back would starve them.
    eventLoop.scheduleTask(in: .microseconds(1)) {
      let spinner = bound.value
      let now = NIODeadline.now()
      if now - askedAt > Self.preemptedGap, case .adaptive = spinner.policy {
        spinner.preempted(at: now)
      } else if now < spinner.until {
        spinner.turn(askedAt: now)
      } else {
        spinner.spinning = false
        spinner.pause = .zero
      }
    }
  }

  /// The spin was taken off its core: stop, and do not spin for a while.
  private func preempted(at now: NIODeadline) {
    spinning = false
    until = now
    pause = pause == .zero ? Self.firstPause : min(pause * 2, Self.longestPause)
    pausedUntil = now + pause
  }
}
