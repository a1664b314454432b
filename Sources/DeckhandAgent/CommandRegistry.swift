public import DeckhandCore
internal import Synchronization

/// The command socket's handlers, registered and unregistered by name at
/// run time (by the agent, and later by plugins through the Host API).
///
/// A handler gets the whole request object (including `Command`) and
/// returns the fields to add to the response; `Status` 0 and an empty
/// `StatusMessage` are added for it. A handler that throws gives Status 105
/// with the error's text.
public final class CommandRegistry: Sendable {
  /// A command handler.
  public typealias Handler = @Sendable (_ request: [String: JSONValue]) async throws -> [String: JSONValue]

  private let handlers = Mutex<[String: Handler]>([:])

  public init() {}

  /// Registers `handler` under `name`.
  ///
  /// - Throws: ``DeckhandCore/DeckhandError`` if the name is taken.
  public func register(_ name: String, _ handler: @escaping Handler) throws {
    let added = handlers.withLock { handlers in
      guard handlers[name] == nil else { return false }
      handlers[name] = handler
      return true
    }
    guard added else {
      throw DeckhandError(.configurationInvalid, "command \(name) is already registered; unregister it first")
    }
  }

  /// Removes the handler of `name`.
  ///
  /// - Throws: ``DeckhandCore/DeckhandError`` if none is registered.
  public func unregister(_ name: String) throws {
    let removed = handlers.withLock { $0.removeValue(forKey: name) != nil }
    guard removed else {
      throw DeckhandError(.configurationInvalid, "command \(name) is not registered")
    }
  }

  /// The handler of `name`, if any.
  public func handler(for name: String) -> Handler? {
    handlers.withLock { $0[name] }
  }

  /// The registered names, sorted.
  public var names: [String] {
    handlers.withLock { $0.keys.sorted() }
  }
}
