internal import NIOCore

/// One timer for every call of a connection with a deadline, instead of a
/// scheduled task per call: a call records its deadline, the timer is set
/// for the earliest, and when it fires the connection expires the calls
/// that are past theirs and sets it again. Calls that end in time cost no
/// timer work at all.
///
/// A task per call was scheduled and cancelled on every call (an
/// allocation, two heap updates and the releases, about 4 % of the host's
/// CPU under 16 callers); calls mostly share one timeout, so a new call's
/// deadline is later than the one already set and changes nothing. Used on
/// the connection's event loop only.
struct DeadlineTimer {
  private var scheduled: Scheduled<Void>?
  private var at: NIODeadline?

  /// Makes sure the timer fires by `deadline`, calling `fire` then.
  mutating func arm(_ deadline: NIODeadline, on eventLoop: any EventLoop, fire: @escaping () -> Void) {
    if let at, at <= deadline { return }
    scheduled?.cancel()
    at = deadline
    let bound = NIOLoopBound(fire, eventLoop: eventLoop)
    scheduled = eventLoop.scheduleTask(deadline: deadline) { bound.value() }
  }

  /// From `fire`: the timer is spent (arm it again for what is left).
  mutating func fired() {
    scheduled = nil
    at = nil
  }

  /// Stops it (the connection ended).
  mutating func cancel() {
    scheduled?.cancel()
    fired()
  }

  /// From `fire`: the entries of `deadlines` that have passed, with the
  /// timer set again (on `eventLoop`, calling `fire`) for the earliest of
  /// the rest. No event loop (the connection ended): not set again.
  mutating func expire<ID>(
    _ deadlines: some Sequence<(ID, NIODeadline?)>, on eventLoop: (any EventLoop)?, fire: @escaping () -> Void
  ) -> [ID] {
    fired()
    let (expired, next) = Self.expired(deadlines, now: .now())
    if let next, let eventLoop { arm(next, on: eventLoop, fire: fire) }
    return expired
  }

  /// The deadlines in `deadlines` that have passed at `now`, and the
  /// earliest of the rest.
  static func expired<ID>(_ deadlines: some Sequence<(ID, NIODeadline?)>, now: NIODeadline) -> (
    expired: [ID], next: NIODeadline?
  ) {
    var expired: [ID] = []
    var next: NIODeadline?
    for (id, deadline) in deadlines {
      guard let deadline else { continue }
      if deadline <= now {
        expired.append(id)
      } else if next.map({ deadline < $0 }) ?? true {
        next = deadline
      }
    }
    return (expired, next)
  }
}
