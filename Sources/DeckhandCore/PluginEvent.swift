/// Something that happened to a supervised plugin, as `deckhand plugin run
/// --events json` prints it: one JSON object a line.
package struct PluginEvent: Hashable, Sendable, Encodable {
  /// The kinds of event.
  package enum Kind: String, Hashable, Sendable, Encodable {
    case launched, ready, healthy, unhealthy, exited, restarting, stopped
    /// A host took over a plugin that a previous host left running.
    case attached
    /// The host stopped supervising a plugin and left it running.
    case detached
    /// A health check failed, below the unhealthy threshold.
    case healthFailed = "health_failed"
    /// A launch failed before the plugin was ready.
    case launchFailed = "launch_failed"
  }

  /// What happened.
  package var event: Kind
  /// The plugin's name.
  package var plugin: String
  /// The plugin's process id, if it had one.
  package var pid: Int32?
  /// When, as seconds since the Unix epoch.
  package var time: Double
  /// Details: exit status, signal, backoff, health code and results, last log
  /// lines, error text.
  package var details: [String: JSONValue]

  package init(event: Kind, plugin: String, pid: Int32?, time: Double, details: [String: JSONValue] = [:]) {
    self.event = event
    self.plugin = plugin
    self.pid = pid
    self.time = time
    self.details = details
  }

  private struct Key: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
  }

  package func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: Key.self)
    try container.encode(event, forKey: Key("event"))
    try container.encode(plugin, forKey: Key("plugin"))
    try container.encode(pid, forKey: Key("pid"))
    try container.encode(time, forKey: Key("time"))
    for (key, value) in details where !["event", "plugin", "pid", "time"].contains(key) {
      try container.encode(value, forKey: Key(key))
    }
  }
}
