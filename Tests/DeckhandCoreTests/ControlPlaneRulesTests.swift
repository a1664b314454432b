import DeckhandCore
import Testing

@Suite("Control plane rules: credentials, heartbeats, backoff, session limits")
struct ControlPlaneRulesTests {
  let digest = String(repeating: "ab", count: 32)

  @Test("tokens and node credentials round-trip; malformed ones say what is wrong without echoing secrets")
  func credentials() throws {
    let token = Credential.token(caDigest: digest, id: "abc123", secret: "S3cret")
    #expect(try Credential.parse(token.text) == token)
    let node = Credential.node(id: "n1", secret: "zz")
    #expect(try Credential.parse(node.text) == node)
    for bad in [
      "", "SWMTKN-1-x", "DHTKN-2-\(digest)-a-b", "DHTKN-1-abc-a-b", "DHTKN-1-\(digest)-a", "DHTKN-1-\(digest)-a-b!c",
      "DHNODE-only",
    ] {
      #expect(throws: DeckhandError.self, "\(bad)") { try Credential.parse(bad) }
    }
    do {
      _ = try Credential.parse("DHTKN-1-\(digest)-id-bad/secret")
    } catch {
      #expect(!error.message.contains("bad/secret"))
    }
  }

  @Test("heartbeat period with ±10 % jitter; DOWN after 3 periods")
  func heartbeats() {
    let timing = ControlPlaneTiming()
    #expect(timing.nextPeriod(random: 0) == .milliseconds(4500))
    #expect(timing.nextPeriod(random: 0.5) == .seconds(5))
    #expect(timing.nextPeriod(random: 1) == .milliseconds(5500))
    #expect(timing.downAfter == .seconds(15))
    #expect(ControlPlaneTiming(heartbeatPeriod: .milliseconds(400)).downAfter == .milliseconds(1200))
  }

  @Test("past 500 heartbeats a second the period grows with the nodes, and DOWN with it")
  func heartbeatsScaleWithNodes() {
    var timing = ControlPlaneTiming()
    #expect(timing.period(nodes: 0) == .seconds(5))
    #expect(timing.period(nodes: 2_500) == .seconds(5))
    #expect(timing.period(nodes: 10_000) == .seconds(20))
    #expect(timing.nextPeriod(random: 1, nodes: 10_000) == .seconds(22))
    // A node given a long period is DOWN after 3 of them; never sooner
    // than 3 configured periods.
    #expect(timing.downAfter(given: .seconds(20)) == .seconds(60))
    #expect(timing.downAfter(given: .seconds(1)) == .seconds(15))
    timing.maxHeartbeatsPerSecond = 0
    #expect(timing.period(nodes: 1_000_000) == .seconds(5))
  }

  @Test("reconnect backoff: min(100 ms + 2 x previous, 8 s)")
  func backoff() {
    let timing = ControlPlaneTiming()
    var bound = Duration.zero
    var bounds: [Duration] = []
    for _ in 0..<8 {
      bound = timing.reconnectBound(after: bound)
      bounds.append(bound)
    }
    #expect(
      bounds == [
        .milliseconds(100), .milliseconds(300), .milliseconds(700), .milliseconds(1500), .milliseconds(3100),
        .milliseconds(6300), .seconds(8), .seconds(8),
      ])
  }

  @Test("more than 3 sessions in 8 s is refused, and allowed again later")
  func sessionLimit() {
    var limiter = SessionRateLimiter(timing: ControlPlaneTiming())
    let start = ContinuousClock.now
    let offsets: [(String, Duration)] = [
      ("n", .zero), ("n", .seconds(1)), ("n", .seconds(2)), ("n", .seconds(3)), ("other", .seconds(3)),
      ("n", .milliseconds(8100)),
    ]
    var answers: [Bool] = []
    for (node, offset) in offsets { answers.append(limiter.allow(node, now: start + offset)) }
    #expect(answers == [true, true, true, false, true, true])
  }
}
