import DeckhandClient
import DeckhandCore
import DeckhandProtocol
import DeckhandServer
import DeckhandTestSupport
import Foundation
import Synchronization
import Testing

@Suite("The job queue's parts: waking runners, group commit")
struct JobQueueUnitTests {
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

  @Test("targets: by id, by labels, and by-id-only runners")
  func accepts() {
    let web = Self.runner("n1", labels: ["role": "web", "zone": "eu"])
    #expect(web.accepts(.init(runner: "", labels: [:])))
    #expect(web.accepts(.init(runner: "", labels: ["role": "web"])))
    #expect(!web.accepts(.init(runner: "", labels: ["role": "db"])))
    #expect(web.accepts(.init(runner: "n1", labels: ["zone": "eu"])))
    #expect(!web.accepts(.init(runner: "n2", labels: [:])))
    let pinned = Self.runner("n3", byIdOnly: true)
    #expect(!pinned.accepts(.init(runner: "", labels: [:])))
    #expect(pinned.accepts(.init(runner: "n3", labels: [:])))
  }

  @Test("concurrent queue writes all commit; a write that fails rolls back alone")
  func groupCommit() async throws {
    let root = try TestWorkspace()
    let store = try SQLiteServerStore(stateDirectory: root.root + "/server")
    let queue = JobQueue(store: store, timing: JobQueue.Timing())
    var job = Deckhand_Server_V1_Job()
    job.noop = .init()
    job.target.labels = ["k": "v"]
    let template = job
    let ids = try await withThrowingTaskGroup(of: String.self) { group in
      for _ in 0..<200 { group.addTask { try await queue.queue(template) } }
      return try await group.reduce(into: [String]()) { $0.append($1) }
    }
    struct Refused: Error {}
    // Changes in flight together: every third one throws halfway.
    let outcomes = await withTaskGroup(of: (String, Bool).self) { group in
      for (index, id) in ids.enumerated() {
        group.addTask {
          do {
            _ = try await store.update(id) { record in
              record.error = "changed"
              if index % 3 == 0 { throw Refused() }
            }
            return (id, true)
          } catch {
            return (id, false)
          }
        }
      }
      return await group.reduce(into: [String: Bool]()) { $0[$1.0] = $1.1 }
    }
    #expect(outcomes.values.filter { !$0 }.count == 67)
    let stored = try store.jobs(states: [], runner: nil, since: 0, limit: 1000)
    #expect(stored.count == 200)
    #expect(stored.allSatisfy { $0.targetLabels == ["k": "v"] && $0.results.isEmpty }, "JSON columns round-trip")
    for record in stored {
      #expect(record.error == (outcomes[record.id] == true ? "changed" : ""), "job \(record.id)")
    }
  }
}
