// No Foundation here: plugins link this module, and even
// FoundationEssentials adds megabytes to a statically linked plugin (and to
// its resident memory). JSON is read with JSONValue's own reader.

extension PluginManifest {
  /// The fields a manifest may have; anything else is reported as unknown.
  static let knownFields: Set<String> = [
    "name", "version", "entrypoint", "args", "protocol", "handshake", "sha256", "config", "env",
    "timeouts", "health", "restart", "limits", "isolation", "permissions",
  ]

  /// Parses the contents of a `plugin.json`.
  ///
  /// - Parameters:
  ///   - bytes: The file's bytes.
  ///   - path: The file's absolute path: it names the file in errors, and a
  ///     relative `entrypoint` is resolved against its folder.
  /// - Throws: ``DeckhandError`` with code ``DeckhandError/Code/manifestInvalid``
  ///   listing every problem found, each naming the field.
  package static func parse(_ bytes: some Collection<UInt8>, path: String) throws(DeckhandError) -> PluginManifest {
    let root: JSONValue
    do {
      root = try JSONValue.parse(bytes)
    } catch {
      throw DeckhandError(
        .manifestInvalid,
        "\(path): not valid JSON (\(error)); a manifest is one JSON object, see README.md",
        cause: error
      )
    }
    var reader = ManifestReader(path: path)
    let manifest = reader.read(root)
    if let manifest, reader.problems.isEmpty { return manifest }
    throw DeckhandError(.manifestInvalid, reader.report())
  }
}

/// Walks a manifest's JSON tree, collecting every problem with the field's
/// dotted path.
struct ManifestReader {
  let path: String
  private(set) var problems: [String] = []

  init(path: String) {
    self.path = path
  }

  func report() -> String {
    let count = problems.count == 1 ? "1 problem" : "\(problems.count) problems"
    return "\(path): invalid plugin manifest, \(count):\n"
      + problems.map { "  - \($0)" }.joined(separator: "\n")
  }

  mutating func problem(_ field: String, _ text: String) {
    problems.append("field \"\(field)\": \(text)")
  }

  mutating func read(_ root: JSONValue) -> PluginManifest? {
    guard case .object(let fields) = root else {
      problems.append("the manifest must be a JSON object, got \(root.typeName)")
      return nil
    }
    for key in fields.keys.sorted() where !PluginManifest.knownFields.contains(key) {
      problem(key, "unknown field (known: \(PluginManifest.knownFields.sorted().joined(separator: ", ")))")
    }
    let name = requiredString(fields, "name")
    if let name, !PluginName.isValid(name) {
      problem("name", "\"\(name)\" is not a valid name: use \(PluginName.rule)")
    }
    let version = requiredString(fields, "version")
    let entrypoint = requiredString(fields, "entrypoint")
    let directory = Self.directory(of: path)

    var manifest = PluginManifest(
      name: name ?? "",
      version: version ?? "",
      entrypoint: entrypoint.map { Self.resolve($0, against: directory) } ?? "",
      directory: directory
    )
    if let args = fields["args"] {
      manifest.args = stringArray(args, "args") ?? []
    }
    if let value = fields["protocol"] {
      if case .string(let text) = value, let proto = PluginManifest.LaunchProtocol(rawValue: text) {
        manifest.launchProtocol = proto
      } else {
        let allowed = PluginManifest.LaunchProtocol.allCases.map { "\"\($0.rawValue)\"" }
        problem("protocol", "must be one of \(allowed.joined(separator: ", ")), got \(Self.show(value))")
      }
    }
    if let value = fields["handshake"] {
      manifest.handshake = readHandshake(value)
    }
    if let value = fields["sha256"] {
      if case .string(let text) = value, text.count == 64,
        text.allSatisfy({ $0.isHexDigit })
      {
        manifest.sha256 = text.lowercased()
      } else {
        problem("sha256", "must be 64 hexadecimal characters (the output of sha256sum), got \(Self.show(value))")
      }
    }
    if let value = fields["config"] {
      switch value {
      case .string(let text): manifest.config = .string(text)
      case .object(let object): manifest.config = .object(object)
      case .null: manifest.config = nil
      default: problem("config", "must be a string or a JSON object, got \(value.typeName)")
      }
    }
    if let value = fields["env"] {
      manifest.environment = readEnvironment(value)
    }
    if let value = object(fields["timeouts"], "timeouts") {
      check(value, "timeouts", allowed: ["start_s", "stop_s", "call_s"])
      manifest.timeouts.start = seconds(value, "timeouts", "start_s") ?? manifest.timeouts.start
      manifest.timeouts.stop = seconds(value, "timeouts", "stop_s") ?? manifest.timeouts.stop
      manifest.timeouts.call = seconds(value, "timeouts", "call_s") ?? manifest.timeouts.call
    }
    if let value = object(fields["health"], "health") {
      check(value, "health", allowed: ["interval_s", "timeout_s", "failures"])
      manifest.health.interval = seconds(value, "health", "interval_s") ?? manifest.health.interval
      manifest.health.timeout = seconds(value, "health", "timeout_s") ?? manifest.health.timeout
      manifest.health.failures = count(value, "health", "failures") ?? manifest.health.failures
    }
    if let value = object(fields["restart"], "restart") {
      check(value, "restart", allowed: ["initial_backoff_s", "max_backoff_s"])
      manifest.restart.initialBackoff =
        seconds(value, "restart", "initial_backoff_s") ?? manifest.restart.initialBackoff
      manifest.restart.maxBackoff = seconds(value, "restart", "max_backoff_s") ?? manifest.restart.maxBackoff
      if manifest.restart.maxBackoff < manifest.restart.initialBackoff {
        problem("restart.max_backoff_s", "must not be smaller than restart.initial_backoff_s")
      }
    }
    if let value = object(fields["limits"], "limits") {
      check(value, "limits", allowed: ["memory_mb", "cpu_percent", "pids", "nofile"])
      manifest.limits.memoryMB = count(value, "limits", "memory_mb", maximum: 16_777_216)
      manifest.limits.cpuPercent = count(value, "limits", "cpu_percent", maximum: 100 * 4096)
      manifest.limits.pids = count(value, "limits", "pids", maximum: 4_194_304)
      manifest.limits.nofile = count(value, "limits", "nofile", maximum: 1_048_576)
    }
    if let value = object(fields["permissions"], "permissions") {
      check(value, "permissions", allowed: ["call", "commands"])
      if let call = value["call"] { manifest.permissions.call = stringArray(call, "permissions.call") ?? [] }
      if let commands = value["commands"] {
        manifest.permissions.commands = stringArray(commands, "permissions.commands") ?? []
      }
    }
    if let value = object(fields["isolation"], "isolation") {
      manifest.isolation = readIsolation(value)
    }
    return manifest
  }

  private mutating func readIsolation(_ value: [String: JSONValue]) -> PluginManifest.Isolation {
    check(
      value, "isolation",
      allowed: [
        "network", "pid_namespace", "mount_namespace", "readonly_paths", "user", "group", "no_new_privileges",
        "optional", "mode", "port",
      ])
    var isolation = PluginManifest.Isolation()
    switch value["network"] {
    case nil, .string("host"): break
    case .string("none"): isolation.network = .none
    case let other?: problem("isolation.network", "must be \"host\" or \"none\", got \(Self.show(other))")
    }
    func flag(_ key: String) -> Bool {
      switch value[key] {
      case nil: return false
      case .bool(let flag): return flag
      case let other?:
        problem("isolation.\(key)", "must be true or false, got \(Self.show(other))")
        return false
      }
    }
    switch value["mode"] {
    case nil, .string("local"): break
    case .string("k8s"): isolation.mode = .k8s
    case let other?: problem("isolation.mode", "must be \"local\" or \"k8s\", got \(Self.show(other))")
    }
    if value["port"] != nil {
      isolation.port = count(value, "isolation", "port", maximum: 65535) ?? isolation.port
    }
    isolation.pidNamespace = flag("pid_namespace")
    isolation.mountNamespace = flag("mount_namespace")
    isolation.noNewPrivileges = flag("no_new_privileges")
    isolation.optional = flag("optional")
    if let paths = value["readonly_paths"] {
      isolation.readonlyPaths = stringArray(paths, "isolation.readonly_paths") ?? []
      for path in isolation.readonlyPaths where !path.hasPrefix("/") {
        problem("isolation.readonly_paths", "\"\(path)\" must be an absolute path")
      }
      if !isolation.readonlyPaths.isEmpty && !isolation.mountNamespace {
        problem("isolation.readonly_paths", "needs \"mount_namespace\": true")
      }
    }
    for key in ["user", "group"] {
      switch value[key] {
      case nil: break
      case .string(let name) where !name.isEmpty:
        if key == "user" { isolation.user = name } else { isolation.group = name }
      case let other?: problem("isolation.\(key)", "must be a user or group name, got \(Self.show(other))")
      }
    }
    return isolation
  }

  // MARK: Field readers

  private mutating func requiredString(_ fields: [String: JSONValue], _ key: String) -> String? {
    guard let value = fields[key] else {
      problem(key, "is required")
      return nil
    }
    guard case .string(let text) = value, !text.isEmpty else {
      problem(key, "must be a non-empty string, got \(Self.show(value))")
      return nil
    }
    return text
  }

  private mutating func stringArray(_ value: JSONValue, _ field: String) -> [String]? {
    guard case .array(let items) = value else {
      problem(field, "must be an array of strings, got \(value.typeName)")
      return nil
    }
    var strings: [String] = []
    for (index, item) in items.enumerated() {
      guard case .string(let text) = item else {
        problem("\(field)[\(index)]", "must be a string, got \(item.typeName)")
        continue
      }
      strings.append(text)
    }
    return strings
  }

  private mutating func object(_ value: JSONValue?, _ field: String) -> [String: JSONValue]? {
    guard let value else { return nil }
    guard case .object(let object) = value else {
      problem(field, "must be an object, got \(value.typeName)")
      return nil
    }
    return object
  }

  private mutating func check(_ object: [String: JSONValue], _ field: String, allowed: Set<String>) {
    for key in object.keys.sorted() where !allowed.contains(key) {
      problem("\(field).\(key)", "unknown field (known: \(allowed.sorted().joined(separator: ", ")))")
    }
  }

  private mutating func seconds(_ object: [String: JSONValue], _ field: String, _ key: String) -> Duration? {
    guard let value = object[key] else { return nil }
    guard case .number(let number) = value, number > 0, number <= 86_400 * 365 else {
      problem("\(field).\(key)", "must be a number of seconds greater than 0, got \(Self.show(value))")
      return nil
    }
    return .milliseconds(Int64((number * 1000).rounded()))
  }

  private mutating func count(
    _ object: [String: JSONValue], _ field: String, _ key: String, maximum: Double = 1000
  ) -> Int? {
    guard let value = object[key] else { return nil }
    guard case .number(let number) = value, number >= 1, number <= maximum, number.rounded() == number else {
      problem("\(field).\(key)", "must be a whole number from 1 to \(Int(maximum)), got \(Self.show(value))")
      return nil
    }
    return Int(number)
  }

  private mutating func readHandshake(_ value: JSONValue) -> PluginManifest.Handshake {
    var handshake = PluginManifest.Handshake.deckhand
    guard let fields = object(value, "handshake") else { return handshake }
    check(fields, "handshake", allowed: ["cookie_key", "cookie_value", "app_version"])
    if let key = fields["cookie_key"] {
      if case .string(let text) = key, !text.isEmpty, !text.contains("=") {
        handshake.cookieKey = text
      } else {
        problem("handshake.cookie_key", "must be a non-empty variable name without '=', got \(Self.show(key))")
      }
    }
    if let cookie = fields["cookie_value"] {
      if case .string(let text) = cookie, !text.isEmpty {
        handshake.cookieValue = text
      } else {
        problem("handshake.cookie_value", "must be a non-empty string, got \(Self.show(cookie))")
      }
    }
    if let version = count(fields, "handshake", "app_version") {
      handshake.appVersion = version
    }
    return handshake
  }

  private mutating func readEnvironment(_ value: JSONValue) -> [String: String] {
    guard let fields = object(value, "env") else { return [:] }
    var environment: [String: String] = [:]
    for (key, item) in fields {
      if key.isEmpty || key.contains("=") {
        problem("env.\(key)", "is not a valid variable name")
      } else if case .string(let text) = item {
        environment[key] = text
      } else {
        problem("env.\(key)", "must be a string, got \(item.typeName)")
      }
    }
    return environment
  }

  // MARK: Helpers

  static func show(_ value: JSONValue) -> String {
    switch value {
    case .string(let text): "\"\(text)\""
    case .number(let number): number.rounded() == number ? String(Int64(number)) : String(number)
    case .bool(let flag): String(flag)
    default: value.typeName
    }
  }

  static func directory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
  }

  static func resolve(_ path: String, against directory: String) -> String {
    if path.hasPrefix("/") { return path }
    var relative = Substring(path)
    while relative.hasPrefix("./") { relative = relative.dropFirst(2) }
    return directory.hasSuffix("/") ? directory + relative : directory + "/" + relative
  }
}
