/// Where the server's state lives when it is not SQLite:
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE]`
/// (`--database-url`, `DECKHAND_DATABASE_URL`).
///
/// A unix socket is named as libpq does, by a `host` parameter that is a
/// path: `postgres://USER@/DATABASE?host=/run/postgresql`. The password is
/// never printed (``description`` shows `***`).
package struct DatabaseURL: Hashable, Sendable, CustomStringConvertible {
  /// Whether and how the connection uses TLS, as libpq's `sslmode`.
  package enum TLSMode: String, Hashable, Sendable, CaseIterable {
    /// Never TLS.
    case disable
    /// TLS if the server offers it, without checking its certificate.
    case prefer
    /// TLS, without checking the certificate's issuer or name.
    case require
    /// TLS, with the certificate checked against the trusted CAs.
    case verifyCA = "verify-ca"
    /// TLS, with the certificate and the host name checked.
    case verifyFull = "verify-full"
  }

  /// Where the server is.
  package enum Address: Hashable, Sendable {
    case tcp(host: String, port: Int)
    /// The folder holding the server's socket, and its port (which names
    /// the socket file, `.s.PGSQL.PORT`).
    case unixSocket(directory: String, port: Int)
  }

  package var user: String
  package var password: String?
  package var address: Address
  package var database: String
  package var tls: TLSMode
  /// `sslrootcert`: a PEM file of the CAs to trust instead of the
  /// system's.
  package var rootCertificatePath: String?

  /// The default port, 5432.
  package static let defaultPort = 5432

  /// Parses `text`.
  ///
  /// - Throws: ``DeckhandError`` `configurationInvalid` saying which part
  ///   is wrong (the password is never repeated).
  package init(parsing text: String) throws(DeckhandError) {
    func invalid(_ problem: String) -> DeckhandError {
      DeckhandError(
        .configurationInvalid,
        "--database-url: \(problem); expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require]")
    }
    guard let schemeEnd = text.firstRange(of: "://") else { throw invalid("no scheme") }
    let scheme = text[..<schemeEnd.lowerBound].lowercased()
    guard scheme == "postgres" || scheme == "postgresql" else {
      throw invalid("the scheme is \(scheme), not postgres")
    }
    var rest = Substring(text[schemeEnd.upperBound...])
    var query: [String: String] = [:]
    if let mark = rest.firstIndex(of: "?") {
      for pair in rest[rest.index(after: mark)...].split(separator: "&") {
        let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let key = Self.decode(parts[0]), let value = Self.decode(parts[1]) else {
          throw invalid("the parameter \(pair.prefix(40)) is not KEY=VALUE")
        }
        query[key] = value
      }
      rest = rest[..<mark]
    }
    guard let at = rest.lastIndex(of: "@") else { throw invalid("no user (USER@HOST)") }
    let credentials = rest[..<at]
    let location = rest[rest.index(after: at)...]
    let userText = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
    guard let user = Self.decode(userText[0]), !user.isEmpty else { throw invalid("no user") }
    self.user = user
    if userText.count == 2 {
      guard let password = Self.decode(userText[1]) else { throw invalid("the password is not valid percent-encoding") }
      self.password = password
    } else {
      password = nil
    }
    guard let slash = location.firstIndex(of: "/") else { throw invalid("no database (HOST/DATABASE)") }
    guard let database = Self.decode(location[location.index(after: slash)...]), !database.isEmpty,
      !database.contains("/")
    else { throw invalid("no database name after the host") }
    self.database = database
    let hostPort = location[..<slash]
    var host: String
    var port = Self.defaultPort
    if hostPort.hasPrefix("[") {
      guard let close = hostPort.firstIndex(of: "]") else { throw invalid("an IPv6 address without its ]") }
      host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
      let after = hostPort[hostPort.index(after: close)...]
      if !after.isEmpty {
        guard after.hasPrefix(":"), let number = Int(after.dropFirst()) else { throw invalid("a bad port") }
        port = number
      }
    } else if let colon = hostPort.lastIndex(of: ":") {
      host = String(hostPort[..<colon])
      guard let number = Int(hostPort[hostPort.index(after: colon)...]) else { throw invalid("a bad port") }
      port = number
    } else {
      host = String(hostPort)
    }
    if let number = query["port"] {
      guard let value = Int(number) else { throw invalid("a bad port") }
      port = value
    }
    guard (1...65535).contains(port) else { throw invalid("port \(port) is out of range") }
    if let socket = query["host"], socket.hasPrefix("/") {
      address = .unixSocket(directory: socket, port: port)
    } else {
      if let named = query["host"] { host = named }
      guard !host.isEmpty else { throw invalid("no host") }
      address = .tcp(host: host, port: port)
    }
    let modeText = query["sslmode"] ?? "prefer"
    guard let mode = TLSMode(rawValue: modeText) else {
      throw invalid(
        "sslmode \(modeText) is not one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    tls = mode
    rootCertificatePath = query["sslrootcert"]
  }

  /// The URL with the password hidden.
  package var description: String {
    let credentials = password == nil ? user : "\(user):***"
    switch address {
    case .tcp(let host, let port):
      let shown = host.contains(":") ? "[\(host)]" : host
      return "postgres://\(credentials)@\(shown):\(port)/\(database)?sslmode=\(tls.rawValue)"
    case .unixSocket(let directory, let port):
      return "postgres://\(credentials)@/\(database)?host=\(directory)&port=\(port)&sslmode=\(tls.rawValue)"
    }
  }

  /// Percent-decoding (`%2F` → `/`); nil if malformed.
  private static func decode(_ text: Substring) -> String? {
    var bytes: [UInt8] = []
    var index = text.utf8.startIndex
    let utf8 = text.utf8
    while index < utf8.endIndex {
      let byte = utf8[index]
      if byte == UInt8(ascii: "%") {
        let first = utf8.index(after: index)
        guard first < utf8.endIndex else { return nil }
        let second = utf8.index(after: first)
        guard second < utf8.endIndex, let high = hexValue(utf8[first]), let low = hexValue(utf8[second]) else {
          return nil
        }
        bytes.append(high << 4 | low)
        index = utf8.index(after: second)
      } else {
        bytes.append(byte)
        index = utf8.index(after: index)
      }
    }
    return String(validating: bytes, as: UTF8.self)
  }

  private static func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
  }
}
