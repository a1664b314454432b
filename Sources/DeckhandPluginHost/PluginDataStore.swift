/// Where the plugin host keeps what plugins ask it to keep: each plugin's
/// key-value data (the Host API's KV calls) and the commands plugins put on
/// the command socket. The agent's SQLite store is one.
package protocol PluginDataStore: Sendable {
  /// The value of `key` in `plugin`'s store.
  func kvGet(_ plugin: String, _ key: String) throws -> [UInt8]?
  /// Sets `key` in `plugin`'s store.
  func kvSet(_ plugin: String, _ key: String, _ value: [UInt8]) throws
  /// Deletes `key` from `plugin`'s store; whether it was there.
  func kvDelete(_ plugin: String, _ key: String) throws -> Bool
  /// `plugin`'s keys that start with `prefix`, sorted.
  func kvList(_ plugin: String, prefix: String) throws -> [String]

  /// Every command a plugin registered, by name: (name, plugin).
  func commands() throws -> [(name: String, plugin: String)]
  /// Records that `plugin` registered `name`.
  func addCommand(_ name: String, plugin: String) throws
  /// Forgets the command `name`.
  func removeCommand(_ name: String) throws
}
