import DeckhandGRPC
import NIOCore
import NIOPosix
import Testing

@Suite("Loop spinner")
struct LoopSpinnerTests {
  /// Runs `body` on one of NIO's shared loops.
  func onLoop<T: Sendable>(_ body: @escaping @Sendable (any EventLoop) -> T) async throws -> T {
    let loop = MultiThreadedEventLoopGroup.singleton.next()
    return try await loop.submit { body(loop) }.get()
  }

  /// Runs `body` on a loop of its own (the busy waits below would hold up
  /// the shared loops other tests time things on).
  func onOwnLoop<T: Sendable>(_ body: @escaping @Sendable (any EventLoop) throws -> T) async throws -> T {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let loop = group.next()
    let result = try await loop.submit { try body(loop) }.get()
    try await group.shutdownGracefully()
    return result
  }

  /// Busy-waits `duration` on the calling thread.
  static func wait(_ duration: TimeAmount) {
    let end = NIODeadline.now() + duration
    while NIODeadline.now() < end {}
  }

  @Test("keeps the loop awake for its budget, serving other work meanwhile, then stops")
  func spinsThenStops() async throws {
    let loop = MultiThreadedEventLoopGroup.singleton.next()
    let spinner = try await loop.submit {
      NIOLoopBound(LoopSpinner(eventLoop: loop, policy: .fixed(.milliseconds(30))), eventLoop: loop)
    }.get()
    let clock = ContinuousClock()
    let armed = clock.now
    try await loop.submit { spinner.value.keepAwake() }.get()
    // Tasks still run while it spins (it never monopolizes the loop).
    let begin = clock.now
    try await loop.submit {}.get()
    #expect(begin.duration(to: clock.now) < .milliseconds(20))
    #expect(try await loop.submit { spinner.value.isSpinning }.get())
    // It stops by itself once the budget is spent (polled: no fixed sleep).
    var stopped = false
    while !stopped && armed.duration(to: clock.now) < .seconds(5) {
      stopped = try await loop.submit { !spinner.value.isSpinning }.get()
      await Task.yield()
    }
    #expect(stopped)
    #expect(armed.duration(to: clock.now) >= .milliseconds(30), "it spun its whole budget")
  }

  @Test("a zero budget never spins")
  func zeroBudget() async throws {
    let spinning = try await onLoop { loop in
      let spinner = LoopSpinner(eventLoop: loop, policy: .fixed(.zero))
      spinner.keepAwake()
      return spinner.isSpinning
    }
    #expect(spinning == false)
  }

  @Test("an adaptive budget follows the waits it sees: twice them, within its floor and ceiling")
  func adaptive() async throws {
    let budgets = try await onOwnLoop { loop in
      let spinner = LoopSpinner(
        eventLoop: loop, policy: .adaptive(floor: .microseconds(20), ceiling: .milliseconds(2)))
      let first = spinner.budget
      // Answers that take 300 µs: the budget grows to cover them.
      for _ in 0..<30 {
        spinner.keepAwake()
        Self.wait(.microseconds(300))
        spinner.arrived()
      }
      let slow = spinner.budget
      // Answers within a few µs: it shrinks to the floor's neighbourhood.
      for _ in 0..<30 {
        spinner.keepAwake()
        spinner.arrived()
      }
      let fast = spinner.budget
      return (first, slow, fast)
    }
    #expect(budgets.0 == .microseconds(100), "it starts as the fixed budget did")
    #expect(budgets.1 >= .microseconds(550) && budgets.1 <= .microseconds(1500), "\(budgets.1)")
    #expect(budgets.2 < .microseconds(60), "\(budgets.2)")
  }

  @Test("waits past the ceiling (an idle connection) stop the spinning until a short one is seen")
  func idleStops() async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let loop = group.next()
    let spinner = try await loop.submit {
      NIOLoopBound(
        LoopSpinner(eventLoop: loop, policy: .adaptive(floor: .microseconds(20), ceiling: .microseconds(200))),
        eventLoop: loop)
    }.get()
    try await loop.submit {
      for _ in 0..<LoopSpinner.idleMisses {
        spinner.value.keepAwake()
        Self.wait(.microseconds(400))
        spinner.value.arrived()
      }
    }.get()
    // Let the spins started before the misses run out.
    try await Task.sleep(for: .milliseconds(20))
    let (idle, idleSpins, back) = try await loop.submit {
      let idle = spinner.value.budget
      spinner.value.keepAwake()
      let idleSpins = spinner.value.isSpinning
      spinner.value.arrived()
      return (idle, idleSpins, spinner.value.budget)
    }.get()
    #expect(idle == .zero && !idleSpins)
    #expect(back > .zero, "a short wait turns it back on")
    try await group.shutdownGracefully()
  }

  @Test("an adaptive spin taken off its core pauses spinning, for longer while it keeps happening; a fixed one goes on")
  func preemptedPauses() async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let loop = group.next()
    let (adaptive, fixed) = try await loop.submit {
      (
        NIOLoopBound(
          LoopSpinner(eventLoop: loop, policy: .adaptive(floor: .milliseconds(5), ceiling: .milliseconds(50))),
          eventLoop: loop),
        NIOLoopBound(LoopSpinner(eventLoop: loop, policy: .fixed(.milliseconds(50))), eventLoop: loop)
      )
    }.get()
    try await loop.submit {
      adaptive.value.keepAwake()
      fixed.value.keepAwake()
    }.get()
    // The loop is held past the gap, as a preempted thread would be: the
    // next turns come late.
    try await loop.submit { Self.wait(LoopSpinner.preemptedGap * 3) }.get()
    try await loop.submit {}.get()
    let (paused, spinning, fixedSpinning) = try await loop.submit {
      adaptive.value.keepAwake()
      return (adaptive.value.isPaused, adaptive.value.isSpinning, fixed.value.isSpinning)
    }.get()
    #expect(paused && !spinning, "paused, and keepAwake does not spin while paused")
    #expect(fixedSpinning, "a fixed budget is what it says")
    // After the pause it spins again.
    try await Task.sleep(for: .nanoseconds(LoopSpinner.firstPause.nanoseconds) + .milliseconds(5))
    let again = try await loop.submit {
      adaptive.value.keepAwake()
      return adaptive.value.isSpinning && !adaptive.value.isPaused
    }.get()
    #expect(again)
    // Cut short again, the pause doubles.
    try await loop.submit { Self.wait(LoopSpinner.preemptedGap * 3) }.get()
    try await loop.submit {}.get()
    let begin = ContinuousClock.now
    try await Task.sleep(for: .nanoseconds(LoopSpinner.firstPause.nanoseconds) + .milliseconds(2))
    let stillPaused = try await loop.submit { adaptive.value.isPaused }.get()
    if begin.duration(to: .now) < .nanoseconds(LoopSpinner.firstPause.nanoseconds * 2) {
      #expect(stillPaused, "the second pause is twice the first")
    }
    try await group.shutdownGracefully()
  }
}
