import DeckhandCore
import DeckhandProtocol
import DeckhandServer
import DeckhandTestSupport
import Foundation
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

@Suite("SQLiteServerStore: job output limits and retention")
struct JobOutputLimitTests {
  func queued(_ queue: JobQueue) async throws -> String {
    var job = Deckhand_Server_V1_Job()
    job.noop = .init()
    return try await queue.queue(job)
  }

  @Test("output past the per-job limit is cut where it crosses it, a note says so, and later output is dropped")
  func outputLimit() async throws {
    let root = try TestWorkspace()
    let store = try SQLiteServerStore(stateDirectory: root.root + "/server")
    let id = try await queued(JobQueue(store: store, timing: JobQueue.Timing()))
    let chunk = Data(repeating: UInt8(ascii: "x"), count: 600)
    _ = try await store.appendOutput(id, [(1, chunk, 1)], limit: 1000)
    let last = try await store.appendOutput(id, [(1, chunk, 2), (2, chunk, 3)], limit: 1000)
    let after = try await store.appendOutput(id, [(1, chunk, 4)], limit: 1000)
    #expect(after == last, "nothing is stored past the limit")
    let stored = try store.output(id, after: 0, limit: 100)
    #expect(stored.map(\.data.count).prefix(2) == [600, 400])
    #expect(stored.count == 3)
    let note = String(decoding: stored.last?.data ?? Data(), as: UTF8.self)
    #expect(note.contains("output cut") && note.contains("1000 bytes"), "\(note)")
    #expect(stored.last?.kind == Deckhand_Server_V1_OutputEvent.Kind.stderr.rawValue)

    // Output that fills the limit exactly: the next event is cut, with the note.
    let exact = try await queued(JobQueue(store: store, timing: JobQueue.Timing()))
    _ = try await store.appendOutput(exact, [(1, chunk, 1)], limit: 600)
    _ = try await store.appendOutput(exact, [(1, chunk, 2)], limit: 600)
    _ = try await store.appendOutput(exact, [(1, chunk, 3)], limit: 600)
    let filled = try store.output(exact, after: 0, limit: 100)
    #expect(filled.count == 2 && filled[0].data.count == 600, "\(filled.map(\.data.count))")
    let filledNote = String(decoding: filled.last?.data ?? Data(), as: UTF8.self)
    #expect(filledNote.contains("output cut"))
  }

  @Test("jobs that ended longer ago than the retention are deleted with their output; others stay")
  func retention() async throws {
    let root = try TestWorkspace()
    let store = try SQLiteServerStore(stateDirectory: root.root + "/server")
    var timing = JobQueue.Timing()
    timing.retention = .milliseconds(300)
    let queue = JobQueue(store: store, timing: timing)
    let ended = try await queued(queue)
    let waiting = try await queued(queue)
    try await queue.cancel(ended, force: true)
    _ = try await store.appendOutput(ended, [(1, Data("out".utf8), 1)], limit: 1 << 20)
    try await Task.sleep(for: .milliseconds(400))
    try queue.sweep()
    #expect(try store.job(id: ended) == nil)
    #expect(try store.output(ended, after: 0, limit: 10).isEmpty)
    #expect(try store.job(id: waiting)?.state == .queued)
  }
}
