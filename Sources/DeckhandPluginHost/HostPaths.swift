package import DeckhandCore
internal import Foundation

/// Where the host keeps plugins' state and sockets.
///
/// - State: `STATE/plugins/NAME/` is the plugin's state directory, kept
///   across restarts and versions; `STATE/logs/NAME.errors.log` its error log.
/// - Runtime: `RUNTIME/NAME.sock`, the plugin's socket; `RUNTIME/NAME.d/`
///   an isolated plugin's socket folder; `RUNTIME/NAME.host.sock` its Host API.
///
/// Every per-plugin path comes from ``child(_:plugin:_:)``, which refuses a
/// name that is not one component directly inside its root.
package struct HostPaths: Hashable, Sendable {
  /// The state root.
  package var stateDirectory: String
  /// The runtime root, for sockets.
  package var runtimeDirectory: String

  package init(stateDirectory: String, runtimeDirectory: String) {
    self.stateDirectory = stateDirectory
    self.runtimeDirectory = runtimeDirectory
  }

  /// Linux conventions: `/var/lib/deckhand` and `/run/deckhand` as root;
  /// `$XDG_STATE_HOME/deckhand` and `$XDG_RUNTIME_DIR/deckhand` otherwise
  /// (`~/.local/state/deckhand`, `/tmp/deckhand-UID` without them).
  package static func defaults(environment: [String: String]? = nil) -> HostPaths {
    var environment = environment ?? ProcessInfo.processInfo.environment
    if environment["HOME", default: ""].isEmpty { environment["HOME"] = NSHomeDirectory() }
    let locations = AgentLocations.defaults(uid: getuid(), environment: environment)
    return HostPaths(stateDirectory: locations.stateDirectory, runtimeDirectory: locations.runtimeDirectory)
  }

  /// The plugin's state directory, sent with Start.
  package func pluginStateDirectory(_ name: String) throws(DeckhandError) -> String {
    try Self.child("\(stateDirectory)/plugins", plugin: name, "")
  }
  /// The file given to guest-agent plugins as `--errorlogfile`.
  package func errorLog(_ name: String) throws(DeckhandError) -> String {
    try Self.child("\(stateDirectory)/logs", plugin: name, ".errors.log")
  }
  /// The file a plugin that outlives its host writes its stdout to.
  package func stdoutLog(_ name: String) throws(DeckhandError) -> String {
    try Self.child("\(stateDirectory)/logs", plugin: name, ".stdout.log")
  }
  /// The file a plugin that outlives its host writes its stderr to.
  package func stderrLog(_ name: String) throws(DeckhandError) -> String {
    try Self.child("\(stateDirectory)/logs", plugin: name, ".stderr.log")
  }
  /// The plugin's socket (guest-agent contract).
  package func socket(_ name: String) throws(DeckhandError) -> String {
    try Self.child(runtimeDirectory, plugin: name, ".sock")
  }
  /// The folder that holds an isolated plugin's socket.
  package func socketFolder(_ name: String) throws(DeckhandError) -> String {
    try Self.child(runtimeDirectory, plugin: name, ".d")
  }
  /// The socket of the plugin's Host API.
  package func hostAPISocket(_ name: String) throws(DeckhandError) -> String {
    try Self.child(runtimeDirectory, plugin: name, ".host.sock")
  }

  /// `root/NAMEsuffix` for a plugin's `name`: every per-plugin path is
  /// built here, and each is checked to be a direct child of its root (a
  /// valid ``PluginName`` and a suffix make one component that is neither
  /// `.` nor `..` and holds no `/`).
  package static func child(_ root: String, plugin name: String, _ suffix: String) throws(DeckhandError) -> String {
    try PluginName.check(name)
    return try child(root, name + suffix)
  }

  /// `root/component`, refused unless `component` is a single path
  /// component other than `.` and `..`.
  package static func child(_ root: String, _ component: String) throws(DeckhandError) -> String {
    guard !component.isEmpty, component != ".", component != "..", !component.contains("/"),
      !component.utf8.contains(0)
    else {
      throw DeckhandError(.configurationInvalid, "\"\(component)\" is not a single name inside \(root)")
    }
    return "\(root)/\(component)"
  }

  /// Creates the folders a plugin needs.
  func prepare(for name: String) throws {
    for folder in [try pluginStateDirectory(name), "\(stateDirectory)/logs", runtimeDirectory] {
      do {
        try FileManager.default.createDirectory(
          atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      } catch {
        throw DeckhandError(
          .configurationInvalid,
          "cannot create \(folder) for plugin \(name): \(error.localizedDescription); choose another --state-dir or --runtime-dir",
          cause: error)
      }
    }
    let socketPath = try socket(name)
    if socketPath.utf8.count >= 108 {
      throw DeckhandError(
        .configurationInvalid,
        "socket path \(socketPath) is \(socketPath.utf8.count) bytes, over the 107 a unix socket allows; choose a shorter --runtime-dir"
      )
    }
  }
}
