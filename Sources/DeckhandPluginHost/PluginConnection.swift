package import DeckhandGRPC
package import DeckhandProtocol
package import SwiftProtobuf

/// The host's side of one connection to a plugin: the calls of
/// `plugin_comm.GuestAgentPlugin`, plus the two go-plugin services.
///
/// Every call takes its own timeout; a call that fails or times out throws
/// a ``DeckhandCore/DeckhandError`` with code `callFailed`.
package protocol PluginConnection: Sendable {
  /// The process serving a unix socket (`SO_PEERCRED`), for the host to
  /// check it is the plugin's; nil over TCP.
  func serverCredentials() async -> PeerCredentials?
  /// Sends StartRequest.
  func start(_ request: PluginComm_StartRequest, timeout: Duration) async throws
  /// Sends StopRequest.
  func stop(_ request: PluginComm_StopRequest, timeout: Duration) async throws
  /// Sends GetStatusRequest, with `data` if given.
  func getStatus(data: String?, timeout: Duration) async throws -> PluginComm_Status
  /// Sends ApplyRequest with `payload`.
  func apply(_ payload: Google_Protobuf_Any, timeout: Duration) async throws
  /// `grpc.health.v1.Health/Check` for `service`: true when SERVING. Throws
  /// if the plugin does not serve the health service.
  func checkHealth(service: String, timeout: Duration) async throws -> Bool
  /// `plugin.GRPCController/Shutdown`, go-plugin's way to end a plugin.
  func shutdownController(timeout: Duration) async throws
  /// `deckhand.host.v1.PluginCommands/HandleCommand`: a command-socket
  /// request for a command the plugin registered.
  func handleCommand(_ request: Deckhand_Host_V1_HandleCommandRequest, timeout: Duration) async throws
    -> Deckhand_Host_V1_HandleCommandResponse
}
