package import DeckhandGRPC
package import DeckhandProtocol
package import SwiftProtobuf

/// A ``PluginConnection`` that tells an observer of each call it carries:
/// the contract's method name, how long it took, and whether it succeeded
/// (the agent's plugin call metrics).
package struct ObservedConnection: PluginConnection {
  /// Told of one call: its method (`Apply`, `GetStatus`, …), its time, and
  /// whether it succeeded.
  package typealias Observer = @Sendable (_ method: String, _ elapsed: Duration, _ succeeded: Bool) -> Void

  /// The method names an observer is told.
  package static let methods = ["Start", "Stop", "GetStatus", "Apply", "Check", "Shutdown", "HandleCommand"]

  let base: any PluginConnection
  let observe: Observer

  package init(base: any PluginConnection, observe: @escaping Observer) {
    self.base = base
    self.observe = observe
  }

  private func timed<T>(_ method: String, _ body: () async throws -> T) async throws -> T {
    let start = ContinuousClock.now
    do {
      let result = try await body()
      observe(method, start.duration(to: .now), true)
      return result
    } catch {
      observe(method, start.duration(to: .now), false)
      throw error
    }
  }

  package func serverCredentials() async -> PeerCredentials? { await base.serverCredentials() }

  package func start(_ request: PluginComm_StartRequest, timeout: Duration) async throws {
    try await timed("Start") { try await base.start(request, timeout: timeout) }
  }

  package func stop(_ request: PluginComm_StopRequest, timeout: Duration) async throws {
    try await timed("Stop") { try await base.stop(request, timeout: timeout) }
  }

  package func getStatus(data: String?, timeout: Duration) async throws -> PluginComm_Status {
    try await timed("GetStatus") { try await base.getStatus(data: data, timeout: timeout) }
  }

  package func apply(_ payload: Google_Protobuf_Any, timeout: Duration) async throws {
    try await timed("Apply") { try await base.apply(payload, timeout: timeout) }
  }

  package func checkHealth(service: String, timeout: Duration) async throws -> Bool {
    try await timed("Check") { try await base.checkHealth(service: service, timeout: timeout) }
  }

  package func shutdownController(timeout: Duration) async throws {
    try await timed("Shutdown") { try await base.shutdownController(timeout: timeout) }
  }

  package func handleCommand(_ request: Deckhand_Host_V1_HandleCommandRequest, timeout: Duration) async throws
    -> Deckhand_Host_V1_HandleCommandResponse
  {
    try await timed("HandleCommand") { try await base.handleCommand(request, timeout: timeout) }
  }
}
