package import DeckhandCore

/// `HOST:PORT` of a server (IPv6 in brackets).
package struct ServerEndpoint: Hashable, Sendable, CustomStringConvertible {
  package var host: String
  package var port: Int

  package init(host: String, port: Int) {
    self.host = host
    self.port = port
  }

  /// Reads `HOST:PORT`; a bare host gets `defaultPort`.
  package init(parsing text: String, defaultPort: Int = ServerEndpoint.defaultPort) throws {
    var host = text
    var port = defaultPort
    if let colon = text.lastIndex(of: ":"), !text.hasSuffix("]") {
      guard let parsed = Int(text[text.index(after: colon)...]), (0...65535).contains(parsed) else {
        throw DeckhandError(.configurationInvalid, "\(text) is not HOST:PORT")
      }
      host = String(text[..<colon])
      port = parsed
    }
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard !host.isEmpty else { throw DeckhandError(.configurationInvalid, "\(text) names no host") }
    self.host = host
    self.port = port
  }

  /// The server's default port.
  package static let defaultPort = 7380

  package var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
