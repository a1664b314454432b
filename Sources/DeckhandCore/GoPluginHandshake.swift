/// The line a HashiCorp go-plugin plugin prints on stdout once it serves:
/// `CORE-VERSION|APP-VERSION|NETWORK|ADDRESS|PROTOCOL[|SERVER-CERT]`, for
/// example `1|1|unix|/tmp/plugin123|grpc|`.
package struct GoPluginHandshake: Hashable, Sendable {
  /// go-plugin's core protocol version; the only one there is.
  package static let coreProtocolVersion = 1

  /// The network the plugin listens on.
  package enum Network: String, Hashable, Sendable {
    case unix
    case tcp
  }

  /// The application protocol version the plugin chose.
  package var appVersion: Int
  /// The network of ``address``.
  package var network: Network
  /// A socket path (``Network/unix``) or `host:port` (``Network/tcp``).
  package var address: String

  package init(appVersion: Int, network: Network, address: String) {
    self.appVersion = appVersion
    self.network = network
    self.address = address
  }

  /// Whether a line from a plugin's stdout is meant as a handshake (and so
  /// must parse) rather than chatter printed before it.
  package static func looksLikeHandshake(_ line: String) -> Bool {
    line.split(separator: "|", omittingEmptySubsequences: false).count >= 4
  }

  /// The line a plugin serving on `address` prints.
  package func line() -> String {
    "\(Self.coreProtocolVersion)|\(appVersion)|\(network.rawValue)|\(address)|grpc|"
  }

  /// Parses a handshake line and checks it against what the host offered.
  ///
  /// - Parameters:
  ///   - line: The line, without its newline.
  ///   - offeredVersions: The app versions the host offered in
  ///     `PLUGIN_PROTOCOL_VERSIONS`.
  /// - Throws: ``DeckhandError`` with code
  ///   ``DeckhandError/Code/handshakeFailed`` saying what was expected and
  ///   what came.
  package static func parse(_ line: String, offeredVersions: [Int]) throws(DeckhandError) -> GoPluginHandshake {
    let trimmed = line.hasSuffix("\r") ? String(line.dropLast()) : line
    let parts = trimmed.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
    let expected = "expected CORE|APP|NETWORK|ADDRESS|grpc[|CERT], e.g. \"1|1|unix|/tmp/plugin1|grpc|\""
    guard parts.count >= 4 else {
      throw fail("malformed handshake line \"\(trimmed)\": \(expected)")
    }
    guard let core = Int(parts[0]) else {
      throw fail("malformed handshake line \"\(trimmed)\": core version \"\(parts[0])\" is not a number; \(expected)")
    }
    guard core == coreProtocolVersion else {
      throw fail("core protocol version \(core) in \"\(trimmed)\"; this host speaks version \(coreProtocolVersion)")
    }
    guard let app = Int(parts[1]) else {
      throw fail("malformed handshake line \"\(trimmed)\": app version \"\(parts[1])\" is not a number; \(expected)")
    }
    guard offeredVersions.contains(app) else {
      let offered = offeredVersions.map(String.init).joined(separator: ",")
      throw fail(
        "plugin chose app protocol version \(app), but the host offered \(offered) (manifest handshake.app_version)")
    }
    guard let network = Network(rawValue: parts[2]) else {
      throw fail("unsupported network \"\(parts[2])\" in \"\(trimmed)\": expected \"unix\" or \"tcp\"")
    }
    let address = parts[3]
    guard !address.isEmpty else {
      throw fail("empty address in \"\(trimmed)\": \(expected)")
    }
    let proto = parts.count > 4 ? parts[4] : "netrpc"
    guard proto == "grpc" else {
      throw fail(
        "plugin speaks protocol \"\(proto)\" in \"\(trimmed)\"; Deckhand speaks only \"grpc\" (go-plugin's GRPCPlugins with AllowedProtocols grpc)"
      )
    }
    if parts.count > 5, !parts[5].isEmpty {
      throw fail("plugin sent a TLS certificate (AutoMTLS), which this host did not ask for; turn AutoMTLS off")
    }
    return GoPluginHandshake(appVersion: app, network: network, address: address)
  }

  private static func fail(_ message: String) -> DeckhandError {
    DeckhandError(.handshakeFailed, "go-plugin handshake: \(message)")
  }

  /// Where the host may connect for this handshake, checked against what
  /// it gave the plugin: a unix socket must sit directly inside
  /// `socketFolder` (an absolute path, no `..` or `.` and no deeper
  /// folder), and TCP must be loopback (`127.0.0.0/8`, `::1`, `localhost`)
  /// with a port from 1 to 65535. A plugin must not be able to make the
  /// host connect elsewhere, nor name a file the host would later remove.
  ///
  /// - Throws: ``DeckhandError`` `handshakeFailed` naming the address and
  ///   what is allowed.
  package func checkedEndpoint(socketFolder: String) throws(DeckhandError) -> Endpoint {
    switch network {
    case .unix:
      let prefix = socketFolder.hasSuffix("/") ? socketFolder : socketFolder + "/"
      let name = address.hasPrefix(prefix) ? String(address.dropFirst(prefix.count)) : ""
      guard address.hasPrefix("/"), !name.isEmpty, name != ".", name != "..", !name.contains("/"),
        !address.utf8.contains(0)
      else {
        throw DeckhandError(
          .handshakeFailed,
          "the handshake names unix socket \"\(address)\", which is not directly inside the folder the host gave the plugin (\(socketFolder), in PLUGIN_UNIX_SOCKET_DIR and TMPDIR)"
        )
      }
      return .unix(path: address)
    case .tcp:
      let colon = address.lastIndex(of: ":")
      var host = colon.map { String(address[..<$0]) } ?? ""
      if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
      let port = colon.flatMap { Int(address[address.index(after: $0)...]) } ?? 0
      guard (1...65535).contains(port) else {
        throw DeckhandError(.handshakeFailed, "the handshake names tcp address \"\(address)\", which is not host:port")
      }
      guard Self.isLoopback(host) else {
        throw DeckhandError(
          .handshakeFailed,
          "the handshake names tcp address \"\(address)\", which is not loopback: a plugin may only listen on 127.0.0.1, ::1 or localhost"
        )
      }
      return .tcp(host: host, port: port)
    }
  }

  /// An address the host may connect to, from ``checkedEndpoint(socketFolder:)``.
  package enum Endpoint: Hashable, Sendable {
    case unix(path: String)
    case tcp(host: String, port: Int)
  }

  static func isLoopback(_ host: String) -> Bool {
    if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
    let octets = host.split(separator: ".", omittingEmptySubsequences: false)
    guard octets.count == 4, octets[0] == "127" else { return false }
    return octets.allSatisfy { part in
      !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCII) && UInt8(part).map { _ in true } ?? false
    }
  }
}
