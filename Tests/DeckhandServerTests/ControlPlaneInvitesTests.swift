import DeckhandCore
import DeckhandTestSupport
import Foundation
import Testing

@testable import DeckhandServer

@Suite("ControlPlane: invites and login tokens for people")
struct ControlPlaneInvitesTests {
  @Test("an invite turns into a login token of its role once; a second use is refused")
  func convertOnce() async throws {
    let root = try TestWorkspace()
    let (plane, _) = try await WebSessionsTests.fixture(in: root.root)
    for role in [TokenRole.viewer, .operator] {
      let (invite, text) = try await plane.createInvite(role: role, ttl: nil, description: "for ana")
      #expect(invite.role == role.invite && invite.expiresMs > 0, "an invite expires after 24 h by default")
      guard case .inviteToken(let id, let inviteRole) = try await plane.authenticate("Bearer \(text)") else {
        Issue.record("an invite authenticates as an invite")
        continue
      }
      let (login, loginText) = try await plane.convertInvite(id: id, role: inviteRole, description: "")
      #expect(login.role == role && login.description == "login from invite \(id)")
      let principal = try await plane.authorize("Bearer \(loginText)", for: .read)
      #expect(principal.may(.operate) == (role == .operator))
      let again = await #expect(throws: DeckhandError.self) {
        try await plane.convertInvite(id: id, role: inviteRole, description: "")
      }
      #expect(again?.message.contains("used already") == true)
      let revoked = await #expect(throws: DeckhandError.self) { try await plane.authenticate("Bearer \(text)") }
      #expect(revoked?.code == .tokenInvalid)
    }
  }

  @Test("an invite is good for nothing else; invites are for operators and viewers only")
  func inviteIsNarrow() async throws {
    let root = try TestWorkspace()
    let (plane, _) = try await WebSessionsTests.fixture(in: root.root)
    let (_, text) = try await plane.createInvite(role: .operator, ttl: nil, description: "")
    let error = await #expect(throws: DeckhandError.self) { try await plane.authorize("Bearer \(text)", for: .read) }
    #expect(error?.code == .permissionDenied && error?.message.contains("deckhand login --invite") == true)
    for role in [TokenRole.worker, .operatorInvite, .operatorSession] {
      await #expect(throws: DeckhandError.self) { try await plane.createInvite(role: role, ttl: nil, description: "") }
    }
    let (record, _) = try await plane.createInvite(role: .viewer, ttl: .seconds(60), description: "")
    #expect(record.expiresMs - record.createdMs == 60_000)
  }

  @Test("a login token has the caller's own role; a viewer cannot make an operator's")
  func loginTokens() async throws {
    let root = try TestWorkspace()
    let (plane, _) = try await WebSessionsTests.fixture(in: root.root)
    let (viewer, _) = try await plane.createToken(role: .viewer, ttl: nil, description: "")
    let (made, _) = try await plane.createLoginToken(
      for: .viewerToken(id: viewer.id), ttl: .seconds(3600), description: "laptop")
    #expect(made.role == .viewer && made.expiresMs > 0)
    let (operatorMade, _) = try await plane.createLoginToken(for: .operatorToken(id: "x"), ttl: nil, description: "")
    #expect(operatorMade.role == .operator && operatorMade.expiresMs == 0)
    for principal in [Principal.joinToken(id: "j"), .node(id: "n"), .inviteToken(id: "i", role: .operatorInvite)] {
      await #expect(throws: DeckhandError.self) {
        try await plane.createLoginToken(for: principal, ttl: nil, description: "")
      }
    }
  }

  @Test("a viewer reads and changes nothing: read calls pass, operating calls are refused saying why")
  func viewerAccess() async throws {
    let root = try TestWorkspace()
    let (plane, _) = try await WebSessionsTests.fixture(in: root.root)
    let (_, viewer) = try await plane.createToken(role: .viewer, ttl: nil, description: "")
    _ = try await plane.authorize("Bearer \(viewer)", for: .read)
    let error = await #expect(throws: DeckhandError.self) {
      try await plane.authorize("Bearer \(viewer)", for: .operate)
    }
    #expect(error?.code == .permissionDenied && error?.message.contains("viewer") == true)
    let (_, worker) = try await plane.createToken(role: .worker, ttl: nil, description: "")
    let refused = await #expect(throws: DeckhandError.self) {
      try await plane.authorize("Bearer \(worker)", for: .read)
    }
    #expect(refused?.code == .permissionDenied)
  }
}
