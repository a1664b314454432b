internal import DeckhandCore
internal import DeckhandGRPC
internal import DeckhandPluginProtocol
internal import FoundationEssentials
public import SwiftProtobuf
internal import Synchronization

#if canImport(Glibc)
  internal import Glibc
#endif

/// The Host API from inside a plugin: its own key-value store (kept by the
/// agent, surviving restarts of plugin and agent), logging and events in
/// the agent's log, and calls to other plugins its manifest allows.
///
/// ```swift
/// let host = try await HostClient.connect()
/// let count = Int(String(decoding: try await host.get("count") ?? [], as: UTF8.self)) ?? 0
/// try await host.set("count", Array(String(count + 1).utf8))
/// ```
public final class HostClient: Sendable {
  /// Log levels.
  public enum Level: Sendable {
    case debug, info, warning, error
  }

  private let path: String
  private let client = Mutex<LeanGRPCClient?>(nil)

  private init(path: String) {
    self.path = path
  }

  /// Connects to the Host API the agent gave this plugin
  /// (`DECKHAND_HOST_SOCKET`).
  ///
  /// - Throws: ``DeckhandError`` `hostUnavailable` when the plugin runs
  ///   without a Host API (under `deckhand plugin run`, say).
  public static func connect() async throws -> HostClient {
    guard let pointer = getenv("DECKHAND_HOST_SOCKET") else {
      throw DeckhandError(
        .hostUnavailable, "no Host API: DECKHAND_HOST_SOCKET is not set (run the plugin under deckhand agent)")
    }
    let host = HostClient(path: String(cString: pointer))
    _ = try await host.connection()
    return host
  }

  /// The value of `key`, or nil.
  public func get(_ key: String) async throws -> [UInt8]? {
    var request = Deckhand_Host_V1_KVGetRequest()
    request.key = key
    let response: Deckhand_Host_V1_KVGetResponse = try await call("KVGet", request)
    return response.found ? Array(response.value) : nil
  }

  /// Sets `key` to `value`.
  public func set(_ key: String, _ value: [UInt8]) async throws {
    var request = Deckhand_Host_V1_KVSetRequest()
    request.key = key
    request.value = Data(value)
    let _: Deckhand_Host_V1_KVSetResponse = try await call("KVSet", request)
  }

  /// Deletes `key`; whether it existed.
  @discardableResult
  public func delete(_ key: String) async throws -> Bool {
    var request = Deckhand_Host_V1_KVDeleteRequest()
    request.key = key
    let response: Deckhand_Host_V1_KVDeleteResponse = try await call("KVDelete", request)
    return response.existed
  }

  /// The keys that start with `prefix`, sorted.
  public func list(prefix: String = "") async throws -> [String] {
    var request = Deckhand_Host_V1_KVListRequest()
    request.prefix = prefix
    let response: Deckhand_Host_V1_KVListResponse = try await call("KVList", request)
    return response.keys
  }

  /// A line in the agent's log under this plugin's name.
  public func log(_ level: Level, _ message: String, fields: [String: String] = [:]) async throws {
    var request = Deckhand_Host_V1_LogRequest()
    request.level =
      switch level {
      case .debug: .debug
      case .info: .info
      case .warning: .warning
      case .error: .error
      }
    request.message = message
    request.fields = fields
    let _: Deckhand_Host_V1_LogResponse = try await call("Log", request)
  }

  /// An event about this plugin.
  public func emitEvent(_ kind: String, fields: [String: String] = [:]) async throws {
    var request = Deckhand_Host_V1_EmitEventRequest()
    request.kind = kind
    request.fields = fields
    let _: Deckhand_Host_V1_EmitEventResponse = try await call("EmitEvent", request)
  }

  /// Another plugin's GetStatus (needs `permissions.call`).
  public func status(ofPlugin name: String, data: String = "") async throws -> PluginStatus {
    var request = Deckhand_Host_V1_CallPluginRequest()
    request.plugin = name
    request.status = data
    let response: Deckhand_Host_V1_CallPluginResponse = try await call("CallPlugin", request)
    return PluginStatus(code: Int32(truncatingIfNeeded: response.code), results: response.results)
  }

  /// Another plugin's Apply (needs `permissions.call`).
  public func apply(toPlugin name: String, _ payload: Google_Protobuf_Any) async throws {
    var request = Deckhand_Host_V1_CallPluginRequest()
    request.plugin = name
    request.apply = payload
    let _: Deckhand_Host_V1_CallPluginResponse = try await call("CallPlugin", request)
  }

  /// Puts `name` on the agent's command socket (needs a matching pattern
  /// in `permissions.commands`): requests to it reach this plugin's
  /// ``Plugin/command(_:request:)``. The registration outlives restarts of
  /// the plugin and the agent; registering a name again succeeds.
  public func registerCommand(_ name: String) async throws {
    var request = Deckhand_Host_V1_RegisterCommandRequest()
    request.name = name
    let _: Deckhand_Host_V1_RegisterCommandResponse = try await call("RegisterCommand", request)
  }

  /// Takes `name`, registered by this plugin, off the command socket.
  public func unregisterCommand(_ name: String) async throws {
    var request = Deckhand_Host_V1_UnregisterCommandRequest()
    request.name = name
    let _: Deckhand_Host_V1_UnregisterCommandResponse = try await call("UnregisterCommand", request)
  }

  // MARK: Calls

  private func connection() async throws -> LeanGRPCClient {
    if let existing = client.withLock({ $0 }) { return existing }
    do {
      let fresh = try await LeanGRPCClient.connect(unixSocket: path)
      client.withLock { $0 = fresh }
      return fresh
    } catch {
      throw DeckhandError(.hostUnavailable, "cannot reach the Host API at \(path): \(error)", cause: error)
    }
  }

  /// One call. After a broken connection or a socket that does not answer
  /// yet (the agent restarted and is binding its Host API again), it tries
  /// again on a new connection: 4 more times, 50 ms to 400 ms apart (1.5 s
  /// in all), then reports the Host API unavailable.
  private func call<Response: SwiftProtobuf.Message>(_ method: String, _ request: some SwiftProtobuf.Message)
    async throws -> Response
  {
    var attempt = 0
    while true {
      do {
        let connection = try await connection()
        return try await connection.message("/deckhand.host.v1.Host/\(method)", request, timeout: .seconds(30))
      } catch let error as GRPCCallError where error.code != .unavailable {
        throw Self.error(error)
      } catch {
        client.withLock { $0 = nil }
        guard attempt < 4 else {
          if let error = error as? GRPCCallError { throw Self.error(error) }
          throw error
        }
        try await Task.sleep(for: .milliseconds(50 << attempt))
        attempt += 1
      }
    }
  }

  /// A Host API status as a ``DeckhandError`` with the agent's message.
  static func error(_ error: GRPCCallError) -> DeckhandError {
    let code: DeckhandError.Code =
      switch error.code {
      case .permissionDenied: .permissionDenied
      case .notFound: .notFound
      case .alreadyExists: .alreadyExists
      case .invalidArgument, .failedPrecondition: .configurationInvalid
      case .unavailable: .hostUnavailable
      default: .callFailed
      }
    return DeckhandError(code, error.message, cause: error)
  }
}
