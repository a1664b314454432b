import DeckhandCore
import Testing

@Suite("TokenRole: invites, sessions and the roles they lead to")
struct TokenRoleTests {
  @Test("invites and sessions lead to operator or viewer, and back")
  func pairs() {
    #expect(TokenRole.operatorInvite.invited == .operator && TokenRole.viewerInvite.invited == .viewer)
    #expect(TokenRole.operator.invite == .operatorInvite && TokenRole.viewer.invite == .viewerInvite)
    #expect(TokenRole.operatorSession.sessionOf == .operator && TokenRole.viewer.session == .viewerSession)
    #expect(TokenRole.worker.invite == nil && TokenRole.worker.session == nil && TokenRole.worker.invited == nil)
    #expect(TokenRole(rawValue: "viewer-invite") == .viewerInvite && TokenRole(rawValue: "root") == nil)
  }
}
