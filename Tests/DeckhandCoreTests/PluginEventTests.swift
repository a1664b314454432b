import DeckhandCore
import Foundation
import Testing

@Suite("PluginEvent: typed facts, printed under their JSON names")
struct PluginEventTests {
  private func json(_ event: PluginEvent) throws -> [String: JSONValue] {
    let encoder = JSONEncoder()
    guard case .object(let object) = try JSONValue.parse(Array(try encoder.encode(event))) else {
      Issue.record("not an object")
      return [:]
    }
    return object
  }

  private func event(_ kind: PluginEvent.Kind) -> PluginEvent {
    PluginEvent(event: kind, plugin: "echo", pid: 42, time: 1_700_000_000)
  }

  @Test("an event with no facts prints only what every event has")
  func bare() throws {
    #expect(try json(event(.ready)) == ["event": "ready", "plugin": "echo", "pid": 42, "time": 1_700_000_000])
    var stopped = event(.stopped)
    stopped.pid = nil
    #expect(try json(stopped)["pid"] == .null)
  }

  @Test(
    "how a process ended prints as exit_code, signal and signal_name, or exit_status",
    arguments: [
      (ProcessExit.exited(code: 3), ["exit_code": JSONValue.number(3)]),
      (.signaled(signal: 9), ["signal": .number(9), "signal_name": "SIGKILL"]),
      (.signaled(signal: 64), ["signal": .number(64), "signal_name": "SIG64"]),
      (.unknown, ["exit_status": "unknown"]),
    ])
  func exits(exit: ProcessExit, expected: [String: JSONValue]) throws {
    var ended = event(.exited)
    ended.exit = exit
    let fields = try json(ended).filter { !["event", "plugin", "pid", "time"].contains($0.key) }
    #expect(fields == expected)
  }

  @Test("an OOM kill with its last lines, a health failure, a restart and a stop print every fact")
  func facts() throws {
    var ended = event(.exited)
    ended.exit = .signaled(signal: 9)
    ended.outOfMemory = true
    ended.reason = "OOM: over limits.memory_mb = 64 MiB"
    ended.lastLines = .init(stderr: ["a", "b"], errorLog: ["c"])
    let exited = try json(ended)
    #expect(exited["oom"] == true)
    #expect(exited["reason"] == "OOM: over limits.memory_mb = 64 MiB")
    #expect(exited["stderr_tail"] == ["a", "b"])
    #expect(exited["errorlog_tail"] == ["c"])
    #expect(exited["stdout_tail"] == nil)

    var health = event(.healthFailed)
    health.healthCode = 1
    health.healthResults = ["disk full"]
    health.failures = 2
    #expect(
      try json(health).filter { ["code", "results", "failures"].contains($0.key) }
        == ["code": 1, "results": ["disk full"], "failures": 2])

    var restart = event(.restarting)
    restart.backoff = .milliseconds(1500)
    restart.attempt = 3
    #expect(try json(restart)["backoff_s"] == 1.5)
    #expect(try json(restart)["attempt"] == 3)

    var stop = event(.stopped)
    stop.stopReplied = false
    stop.stopTime = .milliseconds(250)
    stop.stopError = "deadline"
    #expect(
      try json(stop).filter { ["replied", "stop_ms", "stop_error"].contains($0.key) }
        == ["replied": false, "stop_ms": 250, "stop_error": "deadline"])
    #expect(try json(stop)["oom"] == nil)
  }

  @Test("the text form lists the same facts by the same names")
  func fieldsMatchJSON() throws {
    var launched = event(.launched)
    launched.address = "unix:/run/p.sock"
    launched.version = "1.2.0"
    #expect(launched.fields.map(\.name) == ["address", "version"])
    #expect(try json(launched)["address"] == "unix:/run/p.sock")
  }
}
