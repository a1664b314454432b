package import DeckhandCore
internal import DeckhandGRPC
package import DeckhandProtocol
internal import DeckhandRuntime
package import Foundation
package import Logging

/// The Host API (`deckhand.host.v1.Host`) for one plugin, on a unix socket
/// of its own (`RUNTIME/NAME.host.sock`, given to the plugin as
/// `DECKHAND_HOST_SOCKET`). The caller is the plugin the socket belongs to:
/// no request field names it, and the kernel's word on the connecting
/// process (``PluginPeers``) admits only that plugin's processes, so one
/// plugin cannot act as another even when both run as the same user.
package final class HostAPIServer: Sendable {
  /// The environment variable that names the socket to the plugin.
  package static let environmentKey = "DECKHAND_HOST_SOCKET"

  package let path: String
  private let server: LeanGRPCServer

  private init(path: String, server: LeanGRPCServer) {
    self.path = path
    self.server = server
  }

  /// What the Host API asks of the agent, once a call's permission is
  /// checked. Each runs for the plugin the socket belongs to.
  package struct Actions: Sendable {
    /// Runs another plugin's Apply (Any) or GetStatus (data).
    var callPlugin:
      @Sendable (_ target: String, _ call: Deckhand_Host_V1_CallPluginRequest.OneOf_Call?) async throws ->
        Deckhand_Host_V1_CallPluginResponse
    /// Puts a command of the plugin on the command socket.
    var registerCommand: @Sendable (_ name: String) async throws -> Void
    /// Takes a command of the plugin off the command socket.
    var unregisterCommand: @Sendable (_ name: String) async throws -> Void
    /// Told of every answered call (its method, and whether it
    /// succeeded), for metrics; nil: nobody is told.
    package var observeCall: (@Sendable (_ method: String, _ succeeded: Bool) -> Void)?

    package init(
      callPlugin:
        @escaping @Sendable (_ target: String, _ call: Deckhand_Host_V1_CallPluginRequest.OneOf_Call?) async throws ->
        Deckhand_Host_V1_CallPluginResponse,
      registerCommand: @escaping @Sendable (_ name: String) async throws -> Void,
      unregisterCommand: @escaping @Sendable (_ name: String) async throws -> Void
    ) {
      self.callPlugin = callPlugin
      self.registerCommand = registerCommand
      self.unregisterCommand = unregisterCommand
    }
  }

  /// Serves `plugin`'s Host API at `path`, owned by `owner` (uid, gid) when
  /// the plugin runs as another user. Only `peers` (the plugin's process
  /// and its children, known by `SO_PEERCRED`) may call; any other
  /// process, also one of the same user, gets PERMISSION_DENIED.
  package static func start(
    path: String, plugin: String, permissions: PluginManifest.Permissions, owner: (uid_t, gid_t)?,
    peers: PluginPeers, store: any PluginDataStore, logger: Logger, actions: Actions
  ) async throws -> HostAPIServer {
    var router = LeanGRPCRouter()
    let service = "/deckhand.host.v1.Host/"
    router.register(
      service + "KVGet",
      LeanGRPCRouter.message { (request: Deckhand_Host_V1_KVGetRequest) in
        var response = Deckhand_Host_V1_KVGetResponse()
        if let value = try store.kvGet(plugin, request.key) {
          response.found = true
          response.value = Data(value)
        }
        return response
      })
    router.register(
      service + "KVSet",
      LeanGRPCRouter.message { (request: Deckhand_Host_V1_KVSetRequest) in
        guard !request.key.isEmpty else { throw GRPCCallError(.invalidArgument, "key must not be empty") }
        // A write waits for SQLite's writer (and the WAL's fsync): off the
        // event loop. Reads stay on it: in WAL mode they never wait.
        let (key, value) = (request.key, Array(request.value))
        try await BlockingWork.run { try store.kvSet(plugin, key, value) }
        return Deckhand_Host_V1_KVSetResponse()
      })
    router.register(
      service + "KVDelete",
      LeanGRPCRouter.message { (request: Deckhand_Host_V1_KVDeleteRequest) in
        var response = Deckhand_Host_V1_KVDeleteResponse()
        let key = request.key
        response.existed = try await BlockingWork.run { try store.kvDelete(plugin, key) }
        return response
      })
    router.register(
      service + "KVList",
      LeanGRPCRouter.message { (request: Deckhand_Host_V1_KVListRequest) in
        var response = Deckhand_Host_V1_KVListResponse()
        response.keys = try store.kvList(plugin, prefix: request.prefix)
        return response
      })
    router.register(
      service + "Log",
      LeanGRPCRouter.message { (request: Deckhand_Host_V1_LogRequest) in
        var metadata: Logger.Metadata = ["plugin": "\(plugin)"]
        for (key, value) in request.fields { metadata[key] = "\(value)" }
        let level: Logger.Level =
          switch request.level {
          case .debug: .debug
          case .warning: .warning
          case .error: .error
          default: .info
          }
        logger.log(level: level, "\(request.message)", metadata: metadata)
        return Deckhand_Host_V1_LogResponse()
      })
    router.register(
      service + "EmitEvent",
      LeanGRPCRouter.message { (request: Deckhand_Host_V1_EmitEventRequest) in
        var metadata: Logger.Metadata = ["plugin": "\(plugin)", "event": "\(request.kind)"]
        for (key, value) in request.fields { metadata[key] = "\(value)" }
        logger.info("plugin event", metadata: metadata)
        return Deckhand_Host_V1_EmitEventResponse()
      })
    router.register(
      service + "CallPlugin",
      LeanGRPCRouter.message { (request: Deckhand_Host_V1_CallPluginRequest) in
        guard permissions.call.contains(request.plugin) else {
          throw GRPCCallError(
            .permissionDenied,
            "plugin \(plugin) lacks permission \"call\" for plugin \(request.plugin) (add it to permissions.call in its manifest)"
          )
        }
        return try await mapped(.unavailable) { try await actions.callPlugin(request.plugin, request.call) }
      })
    router.register(
      service + "RegisterCommand",
      LeanGRPCRouter.message { (request: Deckhand_Host_V1_RegisterCommandRequest) in
        guard permissions.allowsCommand(request.name) else {
          throw GRPCCallError(
            .permissionDenied,
            "plugin \(plugin) lacks permission \"commands\" for command \(request.name) (add a matching pattern, such as \"\(plugin).*\", to permissions.commands in its manifest)"
          )
        }
        try await mapped(.failedPrecondition) { try await actions.registerCommand(request.name) }
        return Deckhand_Host_V1_RegisterCommandResponse()
      })
    router.register(
      service + "UnregisterCommand",
      LeanGRPCRouter.message { (request: Deckhand_Host_V1_UnregisterCommandRequest) in
        try await mapped(.notFound) { try await actions.unregisterCommand(request.name) }
        return Deckhand_Host_V1_UnregisterCommandResponse()
      })
    unlink(path)
    if let observe = actions.observeCall {
      router = router.observing { path, succeeded in observe(String(path.dropFirst(service.count)), succeeded) }
    }
    let server = try await LeanGRPCServer.bind(unixSocket: path, router: router) { peer in
      let refusal = peers.refusal(peer)
      if let refusal { logger.warning("Host API caller refused: \(refusal)", metadata: ["plugin": "\(plugin)"]) }
      return refusal
    }
    chmod(path, 0o600)
    if let (uid, gid) = owner, chown(path, uid, gid) != 0 {
      let reason = String(cString: strerror(errno))
      server.close()
      await server.waitUntilClosed()
      throw DeckhandError(.launchFailed, "cannot give the Host API socket \(path) to the plugin's user: \(reason)")
    }
    return HostAPIServer(path: path, server: server)
  }

  /// Runs `body`; an error other than a gRPC status becomes `code` with the
  /// error's text.
  private static func mapped<R>(_ code: GRPCStatusCode, _ body: () async throws -> R) async throws -> R {
    do {
      return try await body()
    } catch let error as GRPCCallError {
      throw error
    } catch let error as DeckhandError {
      throw GRPCCallError(error.code == .notFound ? .notFound : code, error.message)
    } catch {
      throw GRPCCallError(code, "\(error)")
    }
  }

  /// Stops serving and removes the socket, once the listener is closed:
  /// a replacement may bind the same path right after.
  package func close() async {
    server.close()
    await server.waitUntilClosed()
    unlink(path)
  }
}
