import DeckhandCore
import Testing

@Suite("NodeLiveness: sessions, heartbeats, DOWN")
struct NodeLivenessTests {
  /// 1 s heartbeats: DOWN after 3 s without one.
  static let timing = ControlPlaneTiming(heartbeatPeriod: .seconds(1))
  let start = ContinuousClock.now

  @Test("a node whose heartbeats stop is DOWN once, after 3 periods, and not before")
  func downAfterThreePeriods() {
    var liveness = NodeLiveness(timing: Self.timing)
    _ = liveness.sessionOpened("n1", resume: "", newID: "s1", now: start, nowMs: 1_000)
    #expect(liveness.sweep(now: start + .milliseconds(2_999)).isEmpty)
    #expect(liveness.downNodes.isEmpty)
    let changes = liveness.sweep(now: start + .milliseconds(3_001))
    #expect(changes == [NodeLiveness.StatusChange(id: "n1", status: .down, lastHeartbeatMs: 1_000)])
    #expect(liveness.downNodes == ["n1"])
    // Already DOWN: nothing more to write.
    #expect(liveness.sweep(now: start + .seconds(10)).isEmpty)
  }

  @Test("each heartbeat moves the deadline")
  func heartbeatsKeepANodeUp() {
    var liveness = NodeLiveness(timing: Self.timing)
    _ = liveness.sessionOpened("n1", resume: "", newID: "s1", now: start, nowMs: 0)
    for second in 1...10 {
      let now = start + .seconds(second)
      #expect(
        liveness.heartbeat("n1", sessionId: "s1", now: now, nowMs: Int64(second) * 1_000) == .alive(revived: false))
      #expect(!liveness.sweep(now: now + .milliseconds(2_900)).contains { $0.status == .down })
    }
  }

  @Test("a heartbeat on another session is refused and changes nothing")
  func unknownSession() {
    var liveness = NodeLiveness(timing: Self.timing)
    _ = liveness.sessionOpened("n1", resume: "", newID: "s1", now: start, nowMs: 0)
    #expect(liveness.heartbeat("n1", sessionId: "other", now: start + .seconds(2), nowMs: 2_000) == .unknownSession)
    #expect(liveness.heartbeat("n2", sessionId: "s1", now: start + .seconds(2), nowMs: 2_000) == .unknownSession)
    // The refused heartbeat did not keep n1 up.
    #expect(liveness.sweep(now: start + .milliseconds(3_100)).map(\.status) == [.down])
  }

  @Test("a DOWN node's next heartbeat revives it (the caller writes READY)")
  func revive() {
    var liveness = NodeLiveness(timing: Self.timing)
    _ = liveness.sessionOpened("n1", resume: "", newID: "s1", now: start, nowMs: 0)
    _ = liveness.sweep(now: start + .seconds(4))
    #expect(liveness.heartbeat("n1", sessionId: "s1", now: start + .seconds(5), nowMs: 5_000) == .alive(revived: true))
    #expect(liveness.downNodes.isEmpty)
  }

  @Test("resuming the current session keeps its id; a stale or empty resume gets the new one")
  func sessionIds() {
    var liveness = NodeLiveness(timing: Self.timing)
    #expect(liveness.sessionOpened("n1", resume: "", newID: "s1", now: start, nowMs: 0) == "s1")
    #expect(liveness.sessionOpened("n1", resume: "s1", newID: "s2", now: start, nowMs: 0) == "s1")
    #expect(liveness.sessionOpened("n1", resume: "stale", newID: "s3", now: start, nowMs: 0) == "s3")
    #expect(liveness.session(of: "n1") == "s3")
    // The replaced session's heartbeats are refused.
    #expect(liveness.heartbeat("n1", sessionId: "s1", now: start, nowMs: 0) == .unknownSession)
  }

  @Test("a node given a longer period (a large fleet) is DOWN only after 3 of those periods")
  func givenPeriod() {
    var timing = Self.timing
    timing.maxHeartbeatsPerSecond = 2
    var liveness = NodeLiveness(timing: timing)
    _ = liveness.sessionOpened("n0", resume: "", newID: "s0", now: start, nowMs: 0, period: .seconds(1))
    _ = liveness.sessionOpened("n1", resume: "", newID: "s1", now: start, nowMs: 0, period: .seconds(1))
    // 4 nodes at 2 heartbeats a second: every 2 s.
    for node in 2..<4 {
      _ = liveness.sessionOpened("n\(node)", resume: "", newID: "s\(node)", now: start, nowMs: 0, period: .seconds(1))
    }
    #expect(liveness.period == .seconds(2))
    let given = liveness.nextPeriod(random: 0.5)
    #expect(given == .seconds(2))
    #expect(liveness.heartbeat("n1", sessionId: "s1", now: start, nowMs: 0, period: given) == .alive(revived: false))
    let down = liveness.sweep(now: start + .milliseconds(5_900)).filter { $0.status == .down }.map(\.id)
    #expect(Set(down) == ["n0", "n2", "n3"])
    #expect(liveness.sweep(now: start + .milliseconds(6_100)).map(\.id) == ["n1"])
  }

  @Test("heartbeat times are written every 15 s of heartbeats, not on each one")
  func persistsEveryInterval() {
    var liveness = NodeLiveness(timing: ControlPlaneTiming(heartbeatPeriod: .seconds(60)))
    _ = liveness.sessionOpened("n1", resume: "", newID: "s1", now: start, nowMs: 0)
    _ = liveness.heartbeat("n1", sessionId: "s1", now: start + .seconds(14), nowMs: 14_999)
    #expect(liveness.sweep(now: start + .seconds(14)).isEmpty)
    _ = liveness.heartbeat("n1", sessionId: "s1", now: start + .seconds(15), nowMs: 15_000)
    #expect(
      liveness.sweep(now: start + .seconds(15))
        == [NodeLiveness.StatusChange(id: "n1", status: .ready, lastHeartbeatMs: 15_000)])
    #expect(liveness.sweep(now: start + .seconds(16)).isEmpty)
  }
}
