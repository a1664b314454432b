/// Something that happened to a supervised plugin, as `deckhand plugin run
/// --events json` prints it: one JSON object a line.
///
/// Each fact is a typed field, set by the supervisor where it knows it and
/// read by the agent's plugin runtime; ``fields`` is the one place that names
/// them for JSON and text (`exit_code`, `stderr_tail`, …).
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

  /// The last lines a plugin wrote before it ended.
  package struct LastLines: Hashable, Sendable {
    package var stderr: [String] = []
    package var stdout: [String] = []
    /// The tail of the file the manifest names as its error log.
    package var errorLog: [String] = []

    package init(stderr: [String] = [], stdout: [String] = [], errorLog: [String] = []) {
      self.stderr = stderr
      self.stdout = stdout
      self.errorLog = errorLog
    }
  }

  /// What happened.
  package var event: Kind
  /// The plugin's name.
  package var plugin: String
  /// The plugin's process id, if it had one.
  package var pid: Int32?
  /// When, as seconds since the Unix epoch.
  package var time: Double

  /// Where the plugin serves (launched, attached, detached).
  package var address: String?
  /// The plugin's version (launched, attached).
  package var version: String?
  /// What went wrong (a failed launch or health check).
  package var error: String?
  /// How its process ended (exited, stopped, a failed launch).
  package var exit: ProcessExit?
  /// Why the host ended it ("unhealthy", an OOM kill).
  package var reason: String?
  /// The kernel killed it for going over `limits.memory_mb`.
  package var outOfMemory = false
  /// What it wrote last (exited, a failed launch).
  package var lastLines = LastLines()
  /// From launch to ready.
  package var launchTime: Duration?
  /// The code and results of its health check (healthy, health_failed, unhealthy).
  package var healthCode: Int32?
  package var healthResults: [String]?
  /// Failed health checks in a row.
  package var failures: Int?
  /// The wait before the next launch, and which attempt that is (restarting).
  package var backoff: Duration?
  package var attempt: Int?
  /// Whether Stop was answered, how long stopping took, and Stop's error (stopped).
  package var stopReplied: Bool?
  package var stopTime: Duration?
  package var stopError: String?
  /// False when it was stopped while no process ran.
  package var running: Bool?

  package init(event: Kind, plugin: String, pid: Int32?, time: Double) {
    self.event = event
    self.plugin = plugin
    self.pid = pid
    self.time = time
  }

  /// The facts that are set, by their JSON names, in a stable order.
  package var fields: [(name: String, value: JSONValue)] {
    var fields: [(name: String, value: JSONValue)] = []
    func add(_ name: String, _ value: JSONValue?) {
      if let value { fields.append((name, value)) }
    }
    func lines(_ name: String, _ lines: [String]) {
      if !lines.isEmpty { fields.append((name, .array(lines.map(JSONValue.string)))) }
    }
    add("address", address.map(JSONValue.string))
    add("version", version.map(JSONValue.string))
    add("launch_ms", launchTime.map { .number($0.inMilliseconds) })
    switch exit {
    case .exited(let code)?: add("exit_code", .number(Double(code)))
    case .signaled(let signal)?:
      add("signal", .number(Double(signal)))
      add("signal_name", .string(ProcessExit.signalName(signal) ?? "SIG\(signal)"))
    case .unknown?: add("exit_status", "unknown")
    case nil: break
    }
    add("reason", reason.map(JSONValue.string))
    add("oom", outOfMemory ? .bool(true) : nil)
    add("code", healthCode.map { .number(Double($0)) })
    add("results", healthResults.map { .array($0.map(JSONValue.string)) })
    add("failures", failures.map { .number(Double($0)) })
    add("error", error.map(JSONValue.string))
    add("backoff_s", backoff.map { .number($0.inSeconds) })
    add("attempt", attempt.map { .number(Double($0)) })
    add("replied", stopReplied.map(JSONValue.bool))
    add("stop_ms", stopTime.map { .number($0.inMilliseconds) })
    add("stop_error", stopError.map(JSONValue.string))
    add("running", running.map(JSONValue.bool))
    lines("stderr_tail", lastLines.stderr)
    lines("stdout_tail", lastLines.stdout)
    lines("errorlog_tail", lastLines.errorLog)
    return fields
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
    for field in fields { try container.encode(field.value, forKey: Key(field.name)) }
  }
}
