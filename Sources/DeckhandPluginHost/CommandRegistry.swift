package import DeckhandCore
internal import Synchronization

/// The command socket's handlers, registered and unregistered by name at
/// run time (by the agent, and later by plugins through the Host API).
///
/// A handler gets the whole request object (including `Command`) and
/// returns the fields to add to the response; `Status` 0 and an empty
/// `StatusMessage` are added for it. A handler that throws gives Status 105
/// with the error's text.
package final class CommandRegistry: Sendable {
  /// A command handler.
  package typealias Handler = @Sendable (_ request: [String: JSONValue]) async throws -> [String: JSONValue]
  /// A handler that answers at once, without waiting on anything: it runs
  /// on the connection's event loop, with no hop to another thread.
  package typealias ImmediateHandler = @Sendable (_ request: [String: JSONValue]) throws -> [String: JSONValue]

  /// A registered handler.
  package enum Entry: Sendable {
    case waiting(Handler)
    case immediate(ImmediateHandler)
  }

  /// Told of each answered request: its command (`unknown` when no
  /// handler has that name, empty when the request named none) and its
  /// status (for metrics; the command label is bounded by what is
  /// registered).
  package typealias Observer = @Sendable (_ command: String, _ status: CommandStatus) -> Void

  private let handlers = Mutex<[String: Entry]>([:])
  private let observer = Mutex<Observer?>(nil)

  package init() {}

  /// Tells `observer` of every answered request from now on.
  package func observe(_ observer: @escaping Observer) { self.observer.withLock { $0 = observer } }

  /// Tells the observer, if any, of an answered request.
  package func answered(_ command: String, _ status: CommandStatus) { observer.withLock { $0 }?(command, status) }

  /// Registers `handler` under `name`.
  ///
  /// - Throws: ``DeckhandCore/DeckhandError`` if the name is taken.
  package func register(_ name: String, _ handler: @escaping Handler) throws {
    try add(name, .waiting(handler))
  }

  /// Registers a handler that answers at once (no I/O, no waiting): it
  /// runs on the event loop that read the request.
  package func register(_ name: String, immediate handler: @escaping ImmediateHandler) throws {
    try add(name, .immediate(handler))
  }

  private func add(_ name: String, _ entry: Entry) throws {
    let added = handlers.withLock { handlers in
      guard handlers[name] == nil else { return false }
      handlers[name] = entry
      return true
    }
    guard added else {
      throw DeckhandError(.configurationInvalid, "command \(name) is already registered; unregister it first")
    }
  }

  /// Removes the handler of `name`.
  ///
  /// - Throws: ``DeckhandCore/DeckhandError`` if none is registered.
  package func unregister(_ name: String) throws {
    let removed = handlers.withLock { $0.removeValue(forKey: name) != nil }
    guard removed else {
      throw DeckhandError(.configurationInvalid, "command \(name) is not registered")
    }
  }

  /// The handler of `name`, if any.
  package func handler(for name: String) -> Entry? {
    handlers.withLock { $0[name] }
  }

  /// The registered names, sorted.
  package var names: [String] {
    handlers.withLock { $0.keys.sorted() }
  }
}
