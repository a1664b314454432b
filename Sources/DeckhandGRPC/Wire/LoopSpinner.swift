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
/// The spin is bounded: it ends `budget` after the last ``keepAwake()``, so
/// an idle connection costs nothing and a busy one at most `budget` of CPU
/// per call. While it spins, the loop still serves every socket and task:
/// each turn is a timer a microsecond away, which makes the loop poll its
/// sockets and come back. Runs on its loop only.
package final class LoopSpinner {
  /// The budget used unless a connection is given another:
  /// `DECKHAND_GRPC_SPIN_US` microseconds if set (0 turns spinning off),
  /// else 100 µs.
  package static let defaultBudget: Duration = {
    if let text = getenv("DECKHAND_GRPC_SPIN_US").map({ String(cString: $0) }), let us = Int64(text), us >= 0 {
      return .microseconds(us)
    }
    return .microseconds(100)
  }()

  private let eventLoop: any EventLoop
  private let budget: TimeAmount
  private var until = NIODeadline.distantPast
  private var spinning = false

  package init(eventLoop: any EventLoop, budget: Duration) {
    self.eventLoop = eventLoop
    self.budget = TimeAmount(budget)
  }

  /// Whether the loop is being kept awake.
  package var isSpinning: Bool { spinning }

  /// Spins until `budget` from now (nothing when the budget is zero).
  package func keepAwake() {
    guard budget > .zero else { return }
    until = .now() + budget
    guard !spinning else { return }
    spinning = true
    turn()
  }

  private func turn() {
    let bound = NIOLoopBound(self, eventLoop: eventLoop)
    // Not an immediate task: NIO runs those until none is left before it
    // looks at its sockets, so one that put itself back would starve them.
    eventLoop.scheduleTask(in: .microseconds(1)) {
      let spinner = bound.value
      if NIODeadline.now() < spinner.until {
        spinner.turn()
      } else {
        spinner.spinning = false
      }
    }
  }
}
