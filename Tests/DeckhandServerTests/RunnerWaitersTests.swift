import DeckhandServer
import DeckhandTestSupport
import Synchronization
import Testing

@Suite("RunnerWaiters: waking the runners a job may go to")
struct RunnerWaitersTests {
  static func runner(_ id: String, labels: [String: String] = [:], byIdOnly: Bool = false) -> RunnerIdentity {
    RunnerIdentity(id: id, name: id, labels: labels, byIdOnly: byIdOnly)
  }

  final class Names: Sendable {
    private let names = Mutex<[String]>([])
    func append(_ name: String) { names.withLock { $0.append(name) } }
    var all: [String] { names.withLock { $0 } }
  }

  @Test("a job wakes one runner that may take it, not the others")
  func wakesOneMatchingRunner() async throws {
    let waiters = RunnerWaiters()
    let woken = Names()
    let start = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
      for identity in [Self.runner("a", labels: ["role": "web"]), Self.runner("b"), Self.runner("c", byIdOnly: true)] {
        let since = waiters.generation
        group.addTask {
          await waiters.wait(identity, since: since, timeout: .seconds(3))
          if start.duration(to: .now) < .seconds(2) { woken.append(identity.id) }
        }
      }
      // No sleeping for state: the waiters say who waits, and an
      // announcement takes exactly one of them off the list at once.
      #expect(await eventually { waiters.waiting == ["a", "b", "c"] })
      waiters.announce(RunnerWaiters.Target(runner: "", labels: ["role": "web"]))
      #expect(waiters.waiting == ["b", "c"], "only the runner with the label")
      #expect(await eventually { woken.all == ["a"] })
      waiters.announce(RunnerWaiters.Target(runner: "c", labels: [:]))
      #expect(waiters.waiting == ["b"], "the by-id-only runner, by its id")
      #expect(await eventually { woken.all.sorted() == ["a", "c"] })
      try await group.waitForAll()
    }
    #expect(woken.all.sorted() == ["a", "c"], "b waited out its timeout")
  }

  @Test("a runner does not wait when a job was announced since it looked")
  func noLostWakeUp() async {
    let waiters = RunnerWaiters()
    let since = waiters.generation
    waiters.announce(RunnerWaiters.Target(runner: "", labels: [:]))
    let start = ContinuousClock.now
    await waiters.wait(Self.runner("a"), since: since, timeout: .seconds(5))
    #expect(start.duration(to: .now) < .seconds(1))
    waiters.close()
    let closed = ContinuousClock.now
    await waiters.wait(Self.runner("a"), since: waiters.generation, timeout: .seconds(5))
    #expect(closed.duration(to: .now) < .seconds(1), "no waiting after close")
  }
}
