import DeckhandCore
import DeckhandProtocol
import DeckhandServer
import DeckhandTestSupport
import Testing

@Suite("SQLiteServerStore: job writes committed in groups")
struct SQLiteServerStoreJobsTests {
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
