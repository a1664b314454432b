import DeckhandServer
import Testing

@Suite("JobRecords: which runner a job's target accepts")
struct JobRecordsTests {
  static func runner(_ id: String, labels: [String: String] = [:], byIdOnly: Bool = false) -> RunnerIdentity {
    RunnerIdentity(id: id, name: id, labels: labels, byIdOnly: byIdOnly)
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
}
