package import DeckhandCore
internal import DeckhandGRPC
package import DeckhandProtocol
internal import Foundation
package import Logging

/// Routes command-socket commands that plugins register through the Host
/// API to the plugin that registered them, and keeps who owns which (in
/// the ``PluginDataStore``, so they come back after an agent restart).
///
/// The rules: a name is non-empty and has no spaces; names under
/// ``reservedPrefixes`` are the agent's; a name belongs to the first plugin
/// that registers it, and only that plugin may take it off.
package struct PluginCommandRouter: Sendable {
  /// Sends a command's request to `plugin` and returns its answer.
  package typealias Forward =
    @Sendable (_ plugin: String, _ request: Deckhand_Host_V1_HandleCommandRequest) async throws ->
    Deckhand_Host_V1_HandleCommandResponse

  /// Name prefixes the agent keeps for its own commands.
  package static let reservedPrefixes = ["agent.", "plugins."]

  package let registry: CommandRegistry
  private let store: any PluginDataStore
  private let logger: Logger

  package init(registry: CommandRegistry, store: any PluginDataStore, logger: Logger) {
    self.registry = registry
    self.store = store
    self.logger = logger
  }

  /// RegisterCommand for `plugin` (its manifest's permission already
  /// checked); requests for the command go through `forward`.
  ///
  /// - Throws: ``GRPCCallError`` with the status the Host API answers.
  package func register(_ name: String, for plugin: String, forward: @escaping Forward) throws {
    guard !name.isEmpty, !name.contains(where: \.isWhitespace) else {
      throw GRPCCallError(.invalidArgument, "command name \"\(name)\" must be non-empty and without spaces")
    }
    if let reserved = Self.reservedPrefixes.first(where: name.hasPrefix) {
      throw GRPCCallError(.permissionDenied, "command \(name): names starting with \"\(reserved)\" are the agent's")
    }
    let owner = try store.commands().first { $0.name == name }?.plugin
    if owner == plugin, registry.handler(for: name) != nil { return }
    if let owner, owner != plugin {
      throw GRPCCallError(.alreadyExists, "command \(name) is registered by plugin \(owner)")
    }
    do {
      try registry.register(name, handler(name, plugin: plugin, forward: forward))
    } catch {
      throw GRPCCallError(.alreadyExists, "command \(name) is already registered by the agent")
    }
    try store.addCommand(name, plugin: plugin)
    logger.info("command registered", metadata: ["plugin": "\(plugin)", "command": "\(name)"])
  }

  /// UnregisterCommand for `plugin`: only its own commands.
  package func unregister(_ name: String, for plugin: String) throws {
    guard try store.commands().contains(where: { $0 == (name, plugin) }) else {
      throw GRPCCallError(.notFound, "plugin \(plugin) has no command \(name)")
    }
    try drop(of: plugin) { $0 == name }
  }

  /// Puts the stored commands back on the command socket after an agent
  /// restart, dropping those whose plugin is gone or no longer allowed them
  /// (`allowed` says).
  package func restore(allowed: (_ name: String, _ plugin: String) -> Bool, forward: @escaping Forward) throws {
    for (name, plugin) in try store.commands() {
      guard allowed(name, plugin), registry.handler(for: name) == nil else {
        try store.removeCommand(name)
        continue
      }
      try registry.register(name, handler(name, plugin: plugin, forward: forward))
    }
  }

  /// Takes `plugin`'s commands that match `which` off the socket and out
  /// of the store.
  package func drop(of plugin: String, where which: (String) -> Bool) throws {
    for (name, owner) in try store.commands() where owner == plugin && which(name) {
      try? registry.unregister(name)
      try store.removeCommand(name)
    }
  }

  /// The handler that hands a request for `name` to `plugin`.
  private func handler(_ name: String, plugin: String, forward: @escaping Forward) -> CommandRegistry.Handler {
    { request in
      var call = Deckhand_Host_V1_HandleCommandRequest()
      call.name = name
      guard let json = JSONValue.object(request).serialized() else {
        throw DeckhandError(.configurationInvalid, "the request holds a number JSON cannot express")
      }
      call.requestJson = Data(json)
      let response = try await forward(plugin, call)
      guard case .object(let fields) = try? JSONValue.parse(Array(response.responseJson)) else {
        throw DeckhandError(.callFailed, "plugin \(plugin) answered \(name) with something other than a JSON object")
      }
      return fields
    }
  }
}
