import DeckhandCore
import Foundation
import Testing

@Suite("DeploymentState: typed, stored as the text it always was")
struct DeploymentStateTests {
  @Test(
    "each state reads back from its stored text",
    arguments: [DeploymentState.rolling, .complete, .replaced, .paused(reason: "2 task(s) of 1.0.1 failed (max 0)")])
  func roundTrip(state: DeploymentState) throws {
    #expect(DeploymentState(text: state.text) == state)
    let data = try JSONEncoder().encode([state])
    #expect(try JSONDecoder().decode([DeploymentState].self, from: data) == [state])
  }

  @Test("the stored texts are the ones existing databases hold")
  func texts() {
    #expect(DeploymentState.rolling.text == "rolling")
    #expect(DeploymentState.complete.text == "complete")
    #expect(DeploymentState.replaced.text == "replaced")
    #expect(DeploymentState.paused(reason: "why").text == "paused: why")
  }

  @Test("an unknown stored text pauses the deployment instead of driving it")
  func unknownPauses() {
    guard case .paused(let reason) = DeploymentState(text: "exploded") else {
      Issue.record("an unknown state must read as paused")
      return
    }
    #expect(reason.contains("exploded"))
  }
}
