import DeckhandCore
import Testing

@testable import DeckhandServer

@Suite("Principal: who may make which call")
struct PrincipalTests {
  @Test("operators read and operate, viewers only read, everyone else neither")
  func access() {
    #expect(Principal.operatorToken(id: "o").may(.read) && Principal.operatorToken(id: "o").may(.operate))
    #expect(Principal.viewerToken(id: "v").may(.read) && !Principal.viewerToken(id: "v").may(.operate))
    let others: [Principal] = [
      .node(id: "n"), .joinToken(id: "j"), .inviteToken(id: "i", role: .viewerInvite),
      .webSession(id: "s", parent: "o"),
    ]
    for principal in others {
      #expect(!principal.may(.read) && !principal.may(.operate), "\(principal.role)")
    }
  }
}
