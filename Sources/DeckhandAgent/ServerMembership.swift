internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
internal import GRPCCore

/// This agent's membership of a control plane, kept in
/// `STATE/server.json` (0600): the server, the node id, the node's
/// credential and the CA it trusts. Made once with a join token.
struct ServerMembership: Codable, Sendable, Hashable {
  var server: String
  var nodeId: String
  var credential: String
  var caPEM: String

  static func path(_ stateDirectory: String) -> String { "\(stateDirectory)/server.json" }

  static func load(_ stateDirectory: String) -> ServerMembership? {
    guard let data = FileManager.default.contents(atPath: path(stateDirectory)) else { return nil }
    return try? JSONDecoder().decode(ServerMembership.self, from: data)
  }

  func save(_ stateDirectory: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    guard
      FileManager.default.createFile(
        atPath: Self.path(stateDirectory), contents: try encoder.encode(self), attributes: [.posixPermissions: 0o600])
    else {
      throw DeckhandError(
        .configurationInvalid,
        "cannot write \(Self.path(stateDirectory)): \(String(cString: strerror(errno))); check that --state-dir \(stateDirectory) is writable by the agent's user"
      )
    }
  }

  /// Joins `endpoint` with `token`: trusts its CA only if it matches the
  /// token's digest, then trades the token for a node credential.
  static func join(
    _ endpoint: ServerEndpoint, token: String, name: String, description: Deckhand_Dispatcher_V1_NodeDescription
  ) async throws -> ServerMembership {
    let ca = try await ControlPlaneClient.trustedCA(at: endpoint, token: token)
    do {
      return try await ControlPlaneClient.withClient(endpoint, caPEM: ca) { client in
        var request = Deckhand_Dispatcher_V1_JoinRequest()
        request.nodeName = name
        request.description_p = description
        let response = try await Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client).join(
          request, metadata: ControlPlaneClient.metadata(token), options: ControlPlaneClient.options(.seconds(15)))
        return ServerMembership(
          server: endpoint.description, nodeId: response.nodeID, credential: response.credential, caPEM: ca)
      }
    } catch {
      throw ControlPlaneClient.describe(error, endpoint: endpoint)
    }
  }
}
