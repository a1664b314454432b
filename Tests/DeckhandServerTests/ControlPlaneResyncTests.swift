import DeckhandCore
import DeckhandProtocol
import DeckhandServer
import DeckhandTestSupport
import Foundation
import Testing

/// A replica that missed the other replicas' events (its LISTEN
/// connection was down) reads node credentials again when it listens
/// again: a node removed through another replica meanwhile is refused.
@Suite("ControlPlane: credentials read again after a gap in the replicas' events")
struct ControlPlaneResyncTests {
  @Test("a node removed behind this replica's back is accepted from its cache until a resync, then refused, naming it")
  func resync() async throws {
    let root = try TestWorkspace()
    let store = try SQLiteServerStore(stateDirectory: root.root + "/server")
    let authority = try await CertificateAuthority.load(
      store: store, directory: root.root + "/server/tls", hosts: ["127.0.0.1"])
    let plane = try await ControlPlane(
      store: store, authority: authority, timing: ControlPlaneTiming(), artifactsDirectory: root.root + "/artifacts",
      advertisedAddresses: [], logger: StoreFixture.logger)
    let (token, _) = try await plane.createToken(role: .worker, ttl: nil, description: "join")
    var description = Deckhand_Dispatcher_V1_NodeDescription()
    description.hostname = "gap"
    let (node, credential) = try await plane.join(name: "gap", description: description, tokenId: token.id)
    let (other, otherCredential) = try await plane.join(name: "stays", description: description, tokenId: token.id)
    #expect(try await plane.authenticate("Bearer \(credential)") == .node(id: node.id))

    // Another replica removes it: this one never hears of it.
    _ = try await store.removeNode(id: node.id, nowMs: 1)
    #expect(try await plane.authenticate("Bearer \(credential)") == .node(id: node.id), "still cached")

    await plane.received(.resync)
    let error = await #expect(throws: DeckhandError.self) { try await plane.authenticate("Bearer \(credential)") }
    #expect(error?.code == .tokenInvalid && error?.message.contains("removed from the fleet") == true)
    #expect(try await plane.authenticate("Bearer \(otherCredential)") == .node(id: other.id))
    #expect(!plane.isJoined(node.id) && plane.isJoined(other.id))
  }
}
