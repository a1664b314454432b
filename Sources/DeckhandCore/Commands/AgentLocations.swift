/// Where the agent keeps its state and its command socket by default, by
/// Linux conventions: `/var/lib/deckhand` and `/run/deckhand/commands.sock`
/// as root; `$XDG_STATE_HOME/deckhand` and
/// `$XDG_RUNTIME_DIR/deckhand/commands.sock` otherwise (with
/// `~/.local/state` and `/tmp/deckhand-UID` when those are unset).
package struct AgentLocations: Hashable, Sendable {
  /// The state directory: the database, plugin state, logs.
  package var stateDirectory: String
  /// The runtime directory: plugin sockets.
  package var runtimeDirectory: String
  /// The command socket.
  package var commandSocket: String

  package init(stateDirectory: String, runtimeDirectory: String, commandSocket: String) {
    self.stateDirectory = stateDirectory
    self.runtimeDirectory = runtimeDirectory
    self.commandSocket = commandSocket
  }

  /// The defaults for a user id and environment.
  package static func defaults(uid: UInt32, environment: [String: String]) -> AgentLocations {
    if uid == 0 {
      return AgentLocations(
        stateDirectory: "/var/lib/deckhand", runtimeDirectory: "/run/deckhand",
        commandSocket: "/run/deckhand/commands.sock")
    }
    func nonEmpty(_ key: String) -> String? {
      guard let value = environment[key], !value.isEmpty else { return nil }
      return value
    }
    let home = nonEmpty("HOME") ?? "/tmp"
    let state = (nonEmpty("XDG_STATE_HOME") ?? "\(home)/.local/state") + "/deckhand"
    let runtime = nonEmpty("XDG_RUNTIME_DIR").map { "\($0)/deckhand" } ?? "/tmp/deckhand-\(uid)"
    return AgentLocations(
      stateDirectory: state, runtimeDirectory: runtime, commandSocket: "\(runtime)/commands.sock")
  }
}
