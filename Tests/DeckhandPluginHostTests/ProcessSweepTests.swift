import DeckhandPluginHost
import DeckhandTestSupport
import Foundation
import Testing

@Suite("ProcessSweep: everything one launch started")
struct ProcessSweepTests {
  /// Starts `sh -c script` with `entry` in its environment, in a process
  /// group of its own.
  func start(_ script: String, marker entry: String) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", script]
    let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
    process.environment = ["PATH": "/usr/bin:/bin", parts[0]: parts[1]]
    try process.run()
    return process
  }

  @Test("finds and kills marked processes, setsid children included, and only those")
  func marked() async throws {
    let marker = "DECKHAND_TEST_SWEEP=\(UInt64.random(in: 0...UInt64.max))"
    let escaped = "\(Int.random(in: 100_000...999_999)).25"
    let other = "\(Int.random(in: 100_000...999_999)).75"
    let parent = try start("setsid sleep \(escaped) & sleep 300", marker: marker)
    let otherMarker = "DECKHAND_TEST_SWEEP=\(UInt64.random(in: 0...UInt64.max))"
    let unrelated = try start("exec sleep \(other)", marker: otherMarker)
    // (It holds the test runner's stdout: it must not outlive the test.)
    defer { ProcessSweep(marker: otherMarker).killAll() }
    #expect(await eventually { !processes(withArgument: escaped).isEmpty })
    let sweep = ProcessSweep(marker: marker)
    let members = Set(sweep.members())
    #expect(members.contains(parent.processIdentifier))
    #expect(members.isSuperset(of: processes(withArgument: escaped)))
    #expect(!members.contains(unrelated.processIdentifier), "another marker's process is not a member")
    #expect(sweep.killAll())
    #expect(await eventually { processes(withArgument: escaped).isEmpty })
    #expect(unrelated.isRunning)
  }

  @Test("a marker without '=' or an empty one matches nothing")
  func emptyMarker() {
    #expect(ProcessSweep.marked("").isEmpty)
    #expect(ProcessSweep.marked("PATH").isEmpty)
  }
}
