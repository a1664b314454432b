internal import CDeckhandSystem
internal import DeckhandCore
internal import DeckhandGRPC
package import DeckhandPluginHost
internal import Foundation
package import NIOCore
package import NIOPosix
internal import Synchronization

#if canImport(Glibc)
  internal import Glibc
#endif

/// The agent's command socket: a unix socket that speaks the guest agent's
/// command protocol, one JSON request and one JSON response per connection.
///
/// A thread accepts connections and answers whole requests for immediate
/// handlers at once (``CommandAcceptor``); other connections are served
/// concurrently on an event loop and their handlers run as tasks, so a
/// slow or silent client holds only its own connection.
package final class CommandSocketServer: Sendable {
  private let acceptor: CommandAcceptor
  /// The socket's path.
  package let path: String

  private init(acceptor: CommandAcceptor, path: String) {
    self.acceptor = acceptor
    self.path = path
  }

  /// Creates the socket's folder if needed, binds `path` with `mode` and
  /// `group`, and starts serving `registry`.
  ///
  /// - Parameters:
  ///   - timeout: How long a client has to send its whole request (104
  ///     after it).
  /// - Throws: ``DeckhandCore/DeckhandError`` if another process serves
  ///   the path, or the folder, mode or group cannot be set.
  package static func bind(
    path: String, mode: UInt32 = 0o660, group: String? = nil, registry: CommandRegistry,
    timeout: Duration = .seconds(10), maxConnections: Int = CommandSocketServer.maxConnections,
    eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) async throws -> CommandSocketServer {
    guard path.utf8.count < 108 else {
      throw DeckhandError(
        .configurationInvalid, "command socket path \(path) is over the 107 bytes a unix socket allows; use --socket")
    }
    let folder = (path as NSString).deletingLastPathComponent
    do {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    } catch {
      throw DeckhandError(
        .configurationInvalid,
        "cannot create \(folder) for the command socket: \(error.localizedDescription); choose another --socket path or run the agent as a user that may create it",
        cause: error)
    }
    var groupID: gid_t?
    if let group {
      guard let entry = getgrnam(group) else {
        throw DeckhandError(.configurationInvalid, "--socket-group \(group): no such group")
      }
      groupID = entry.pointee.gr_gid
    }
    if FileManager.default.fileExists(atPath: path) {
      if deckhand_unix_probe(path) == 0 {
        throw DeckhandError(
          .configurationInvalid, "\(path) is served by another process (another agent?); stop it or use --socket")
      }
      unlink(path)
    }
    let timeoutAmount = TimeAmount(timeout)
    let open = OpenConnections()
    let listener = deckhand_unix_listen(path, 512)
    guard listener >= 0 else {
      throw DeckhandError(.configurationInvalid, "cannot listen on \(path): \(String(cString: strerror(-listener)))")
    }
    // The connections the accepting thread does not answer itself are
    // served on one event loop: a connection lives for one request, and
    // handing each to another loop's thread costs more than the request
    // (measured: 0.52x of the floor's rate with the two loops, 0.60x with
    // one). Waiting handlers run as tasks.
    let loop = eventLoopGroup.next()
    let acceptor = CommandAcceptor(descriptor: listener, registry: registry) { connection, unsent in
      let bootstrap = ClientBootstrap(group: loop).channelOption(.allowRemoteHalfClosure, value: true)
      if let unsent {
        bootstrap.withConnectedSocket(connection).whenSuccess { writeAndFinish($0, unsent, drain: false) }
        return
      }
      _ = bootstrap.channelInitializer { channel in
        // Past the limit a connection is closed at once: idle connections
        // (each lives until its timeout) cannot take the agent's
        // descriptors.
        // (A failed initializer makes NIO close the channel.)
        guard open.enter(limit: maxConnections) else {
          return channel.eventLoop.makeFailedFuture(
            DeckhandError(.rateLimited, "over \(maxConnections) command socket connections"))
        }
        channel.closeFuture.whenComplete { _ in open.leave() }
        return channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHandler(
            CommandConnectionHandler(registry: registry, timeout: timeoutAmount))
        }
      }
      .withConnectedSocket(connection)
    }
    if chmod(path, mode_t(mode)) != 0 {
      let reason = String(cString: strerror(errno))
      await acceptor.close()
      throw DeckhandError(.configurationInvalid, "cannot set mode \(String(mode, radix: 8)) on \(path): \(reason)")
    }
    if let groupID, chown(path, uid_t.max, groupID) != 0 {
      let reason = String(cString: strerror(errno))
      await acceptor.close()
      throw DeckhandError(.configurationInvalid, "cannot give \(path) to group \(group ?? ""): \(reason)")
    }
    return CommandSocketServer(acceptor: acceptor, path: path)
  }

  /// Connections served at once; more are closed as they arrive.
  package static let maxConnections = 512

  /// The count of open connections (a class: the initializer escapes).
  private final class OpenConnections: Sendable {
    private let count = Atomic(0)
    /// One more; whether it is within `limit` (if not, it is not counted).
    func enter(limit: Int) -> Bool {
      guard count.add(1, ordering: .relaxed).newValue <= limit else {
        count.subtract(1, ordering: .relaxed)
        return false
      }
      return true
    }
    func leave() { count.subtract(1, ordering: .relaxed) }
  }

  /// Stops accepting connections and removes the socket file.
  package func close() async {
    await acceptor.close()
    unlink(path)
  }
}
