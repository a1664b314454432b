import DeckhandCore
import DeckhandTestSupport
import Foundation
import Testing

@testable import DeckhandServer

@Suite("WebSessions: sign-in sessions kept as tokens, checked with the token that signed in")
struct WebSessionsTests {
  /// A control plane on a fresh SQLite store in `root`, and its web sessions.
  static func fixture(in root: String, lifetime: Duration = WebSessions.defaultLifetime) async throws -> (
    ControlPlane, WebSessions
  ) {
    let plane = try await StoreFixture.controlPlane(in: root)
    return (plane, WebSessions(plane: plane, lifetime: lifetime))
  }

  @Test("an operator's and a viewer's token sign in, with their roles; worker tokens and invites cannot")
  func signIn() async throws {
    let root = try TestWorkspace()
    let (plane, sessions) = try await Self.fixture(in: root.root)
    let (operatorRecord, operatorToken) = try await plane.createToken(role: .operator, ttl: nil, description: "")
    let (viewerRecord, viewerToken) = try await plane.createToken(role: .viewer, ttl: nil, description: "")
    let asOperator = try #require(await sessions.session(try await sessions.open(token: operatorToken)))
    #expect(asOperator.principal == .operatorToken(id: operatorRecord.id) && asOperator.mayOperate)
    let asViewer = try #require(await sessions.session(try await sessions.open(token: viewerToken)))
    #expect(asViewer.principal == .viewerToken(id: viewerRecord.id) && !asViewer.mayOperate)

    let (_, worker) = try await plane.createToken(role: .worker, ttl: nil, description: "")
    let (_, invite) = try await plane.createInvite(role: .operator, ttl: nil, description: "")
    for refused in [worker, invite] {
      let error = await #expect(throws: DeckhandError.self) { try await sessions.open(token: refused) }
      #expect(error?.code == .permissionDenied)
    }
    let error = await #expect(throws: DeckhandError.self) { try await sessions.open(token: "DHTKN-1-made-up") }
    #expect(error?.code == .tokenInvalid)
    for cookie in [nil, "", "junk"] as [String?] {
      let none = await sessions.session(cookie)
      #expect(none == nil)
    }
  }

  @Test("signing out, revoking the token that signed in, or its expiry ends the session")
  func ending() async throws {
    let root = try TestWorkspace()
    let (plane, sessions) = try await Self.fixture(in: root.root)
    let (record, token) = try await plane.createToken(role: .operator, ttl: nil, description: "")
    let first = try await sessions.open(token: token)
    let second = try await sessions.open(token: token)
    await sessions.close(try #require(await sessions.session(first)))
    #expect(await sessions.session(first) == nil)
    #expect(await sessions.session(second) != nil, "signing out ends that session only")
    _ = try await plane.revokeToken(id: record.id)
    #expect(await sessions.session(second) == nil)

    let (_, shortLived) = try await plane.createToken(role: .viewer, ttl: .milliseconds(300), description: "")
    let cookie = try await sessions.open(token: shortLived)
    #expect(await sessions.session(cookie) != nil)
    try await Task.sleep(for: .milliseconds(700))
    #expect(await sessions.session(cookie) == nil, "the token that signed in expired")
  }

  @Test("a session past its own lifetime is gone, though its token is still good")
  func lifetime() async throws {
    let root = try TestWorkspace()
    let (plane, sessions) = try await Self.fixture(in: root.root, lifetime: .milliseconds(300))
    let (record, token) = try await plane.createToken(role: .operator, ttl: nil, description: "")
    let cookie = try await sessions.open(token: token)
    #expect(await sessions.session(cookie) != nil)
    try await Task.sleep(for: .milliseconds(700))
    #expect(await sessions.session(cookie) == nil)
    #expect(try await plane.authenticate("Bearer \(token)") == .operatorToken(id: record.id))
  }

  @Test("another replica's WebSessions on the same store knows the session")
  func acrossReplicas() async throws {
    let root = try TestWorkspace()
    let (plane, sessions) = try await Self.fixture(in: root.root)
    let (_, token) = try await plane.createToken(role: .operator, ttl: nil, description: "")
    let cookie = try await sessions.open(token: token)
    let other = try await StoreFixture.controlPlane(in: root.root)
    let there = try #require(await WebSessions(plane: other).session(cookie))
    #expect(there.csrf == WebSessions.csrf(cookie: cookie))
  }

  @Test("a session cookie is good for nothing in the gRPC API")
  func cookieIsNotAToken() async throws {
    let root = try TestWorkspace()
    let (plane, sessions) = try await Self.fixture(in: root.root)
    let (_, token) = try await plane.createToken(role: .operator, ttl: nil, description: "")
    let cookie = try await sessions.open(token: token)
    for access in [Principal.Access.read, .operate] {
      let error = await #expect(throws: DeckhandError.self) {
        try await plane.authorize("Bearer \(cookie)", for: access)
      }
      #expect(error?.code == .permissionDenied)
    }
  }

  @Test("each session has its own CSRF secret and only it matches")
  func csrf() async throws {
    let root = try TestWorkspace()
    let (plane, sessions) = try await Self.fixture(in: root.root)
    let (_, token) = try await plane.createToken(role: .operator, ttl: nil, description: "")
    let first = try #require(await sessions.session(try await sessions.open(token: token)))
    let second = try #require(await sessions.session(try await sessions.open(token: token)))
    #expect(first.csrf != second.csrf && first.csrf.count == 64)
    #expect(WebSessions.csrfMatches(first.csrf, first))
    #expect(!WebSessions.csrfMatches(second.csrf, first))
    #expect(!WebSessions.csrfMatches(nil, first) && !WebSessions.csrfMatches("", first))
    #expect(!WebSessions.csrfMatches(String(first.csrf.dropLast()), first))
  }
}
