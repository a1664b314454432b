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

  @Test("keeps the loop awake for its budget, serving other work meanwhile, then stops")
  func spinsThenStops() async throws {
    let loop = MultiThreadedEventLoopGroup.singleton.next()
    let spinner = try await loop.submit {
      NIOLoopBound(LoopSpinner(eventLoop: loop, budget: .milliseconds(30)), eventLoop: loop)
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
      let spinner = LoopSpinner(eventLoop: loop, budget: .zero)
      spinner.keepAwake()
      return spinner.isSpinning
    }
    #expect(spinning == false)
  }
}
