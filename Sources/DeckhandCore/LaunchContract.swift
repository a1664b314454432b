/// How a plugin was launched, as the plugin sees it from its command line
/// and environment.
package enum LaunchContract: Hashable, Sendable {
  /// The guest agent's: serve on the unix socket `address`, write errors to
  /// `errorLogFile`.
  case guestAgent(address: String, errorLogFile: String?)
  /// The guest agent's with `--protocol=tcp`: serve on `host`:`port` (a
  /// plugin in a Kubernetes pod, reached through its Service).
  case guestAgentTCP(host: String, port: Int, errorLogFile: String?)
  /// HashiCorp go-plugin's: the cookie matched; serve, then print the
  /// handshake line with `appVersion`.
  case goPlugin(appVersion: Int, socketDirectory: String)

  /// Works out the contract from `arguments` (argv without argv[0]) and
  /// `environment`.
  ///
  /// - Parameters:
  ///   - handshakes: The go-plugin cookies the plugin accepts, with the app
  ///     protocol version it speaks under each.
  /// - Returns: The contract, or nil when the process was not launched as a
  ///   plugin (a person ran it by hand, or the cookie is wrong).
  /// - Throws: ``DeckhandError`` when a contract is recognised but broken:
  ///   `--protocol` other than `unix` or `tcp`, no `--address`, a tcp
  ///   address that is not HOST:PORT, or a go-plugin host
  ///   that offers no version the plugin speaks.
  package static func detect(
    arguments: [String],
    environment: [String: String],
    handshakes: [PluginManifest.Handshake]
  ) throws(DeckhandError) -> LaunchContract? {
    let flags = Self.flags(arguments)
    if let address = flags["address"] {
      let proto = flags["protocol"] ?? "unix"
      let errorLogFile = flags["errorlogfile"].flatMap { $0.isEmpty ? nil : $0 }
      guard !address.isEmpty else {
        throw DeckhandError(.configurationInvalid, "launched with an empty --address; the host must give a socket path")
      }
      switch proto {
      case "unix":
        return .guestAgent(address: address, errorLogFile: errorLogFile)
      case "tcp":
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
          (0...65535).contains(port)
        else {
          throw DeckhandError(
            .configurationInvalid, "launched with --protocol=tcp --address=\(address); the address must be HOST:PORT")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return .guestAgentTCP(host: host.isEmpty ? "0.0.0.0" : host, port: port, errorLogFile: errorLogFile)
      default:
        throw DeckhandError(
          .configurationInvalid, "launched with --protocol=\(proto); this plugin serves --protocol=unix or tcp")
      }
    }
    guard let offered = environment["PLUGIN_PROTOCOL_VERSIONS"] else { return nil }
    guard let handshake = handshakes.first(where: { environment[$0.cookieKey] == $0.cookieValue }) else {
      return nil
    }
    let versions = offered.split(separator: ",").compactMap { Int($0.trimmingSpaces()) }
    guard versions.contains(handshake.appVersion) else {
      throw DeckhandError(
        .handshakeFailed,
        "the go-plugin host offers protocol versions \(offered), but this plugin speaks version \(handshake.appVersion)"
      )
    }
    let directory =
      [environment["PLUGIN_UNIX_SOCKET_DIR"], environment["TMPDIR"]]
      .compactMap { $0 }.first { !$0.isEmpty } ?? "/tmp"
    return .goPlugin(appVersion: handshake.appVersion, socketDirectory: directory)
  }

  /// `--name=value` and `--name value` flags.
  static func flags(_ arguments: [String]) -> [String: String] {
    var flags: [String: String] = [:]
    var index = 0
    while index < arguments.count {
      let argument = arguments[index]
      index += 1
      guard argument.hasPrefix("--") else { continue }
      let body = argument.dropFirst(2)
      let known = ["protocol", "address", "errorlogfile"]
      if let equals = body.firstIndex(of: "=") {
        let name = String(body[..<equals])
        if known.contains(name) { flags[name] = String(body[body.index(after: equals)...]) }
      } else if known.contains(String(body)), index < arguments.count {
        flags[String(body)] = arguments[index]
        index += 1
      }
    }
    return flags
  }
}

extension Substring {
  fileprivate func trimmingSpaces() -> Substring {
    var result = self
    while result.first == " " { result = result.dropFirst() }
    while result.last == " " { result = result.dropLast() }
    return result
  }
}
