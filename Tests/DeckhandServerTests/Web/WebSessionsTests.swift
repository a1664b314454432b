import Testing

@testable import DeckhandServer

@Suite("WebSessions: sign-in sessions and their CSRF secrets")
struct WebSessionsTests {
  @Test("a session lives for its lifetime, then is gone; closing ends it at once")
  func lifetime() {
    let sessions = WebSessions()
    let start = ContinuousClock.now
    let id = sessions.open(authorization: "Bearer a", now: start)
    #expect(id.count == 64)
    #expect(sessions.session(id, now: start + .seconds(60))?.authorization == "Bearer a")
    #expect(sessions.session(id, now: start + WebSessions.lifetime + .seconds(1)) == nil)
    let other = sessions.open(authorization: "Bearer b", now: start)
    sessions.close(other)
    #expect(sessions.session(other, now: start) == nil)
    #expect(sessions.session(nil) == nil && sessions.session("") == nil && sessions.session("made-up") == nil)
  }

  @Test("only the session's own CSRF secret matches; each session has its own")
  func csrf() throws {
    let sessions = WebSessions()
    let first = try #require(sessions.session(sessions.open(authorization: "Bearer a")))
    let second = try #require(sessions.session(sessions.open(authorization: "Bearer a")))
    #expect(first.csrf != second.csrf)
    #expect(WebSessions.csrfMatches(first.csrf, first))
    #expect(!WebSessions.csrfMatches(second.csrf, first))
    #expect(!WebSessions.csrfMatches(nil, first) && !WebSessions.csrfMatches("", first))
    #expect(!WebSessions.csrfMatches(String(first.csrf.dropLast()), first))
  }

  @Test("at most maxSessions are kept: a flood of sign-ins pushes out the oldest, not memory")
  func bounded() {
    let sessions = WebSessions()
    let start = ContinuousClock.now
    let oldest = sessions.open(authorization: "Bearer old", now: start)
    for index in 1...WebSessions.maxSessions {
      _ = sessions.open(authorization: "Bearer \(index)", now: start + .milliseconds(index))
    }
    #expect(sessions.session(oldest, now: start + .seconds(20)) == nil)
  }
}
