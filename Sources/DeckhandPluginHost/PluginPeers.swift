internal import CDeckhandSystem
package import DeckhandCore
package import DeckhandGRPC
internal import Synchronization

/// The processes that may speak for one plugin: the plugin's current
/// process (known from the moment it is spawned, or adopted) and its
/// descendants. A unix socket's peer is known from the kernel
/// (`SO_PEERCRED`), not from anything the peer says: two plugins run as
/// the same user cannot use each other's Host API, nor serve each other's
/// plugin socket.
///
/// A descendant that left the tree (a daemon that double-forked to init)
/// no longer speaks for the plugin.
package final class PluginPeers: Sendable {
  package let plugin: String
  /// One more process admitted to the Host API: the Host API benchmark's,
  /// which calls as a plugin would. Nil in the agent.
  package let alsoAdmits: Int32?
  private let current = Mutex<Int32?>(nil)

  package init(plugin: String, alsoAdmits: Int32? = nil) {
    self.plugin = plugin
    self.alsoAdmits = alsoAdmits
  }

  /// The plugin's process now (nil while none runs).
  package var pid: Int32? {
    get { current.withLock { $0 } }
    set { current.withLock { $0 = newValue } }
  }

  /// Why `peer` may not call this plugin's Host API, or nil when it may.
  package func refusal(_ peer: PeerCredentials?) -> String? {
    guard let peer else { return "the calling process is not known (no SO_PEERCRED on the socket)" }
    if let alsoAdmits, peer.pid == alsoAdmits { return nil }
    guard let pid else {
      return "this Host API belongs to plugin \(plugin), which has no process running; pid \(peer.pid) is refused"
    }
    // A few reads of /proc/N/stat, once per connection.
    guard deckhand_is_descendant(peer.pid, pid) == 1 else {
      return
        "this Host API belongs to plugin \(plugin) (pid \(pid)); pid \(peer.pid) is neither that process nor one of its children"
    }
    return nil
  }

  /// Checks that the process serving `socket` (its `SO_PEERCRED`) is the
  /// plugin process `pid` or one of its children.
  ///
  /// - Throws: ``DeckhandError`` `launchFailed` naming both processes
  ///   (another plugin took the socket over, say).
  package static func checkServer(_ server: PeerCredentials?, socket: String, plugin: String, pid: Int32) throws {
    guard let server else {
      throw DeckhandError(
        .launchFailed, "plugin \(plugin): cannot tell which process serves \(socket) (no SO_PEERCRED)")
    }
    guard deckhand_is_descendant(server.pid, pid) == 1 else {
      throw DeckhandError(
        .launchFailed,
        "plugin \(plugin): \(socket) is served by pid \(server.pid), which is neither the plugin's process (pid \(pid)) nor one of its children; another process took the socket over"
      )
    }
  }
}
