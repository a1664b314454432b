/// Where a plugin serves.
package enum PluginAddress: Hashable, Sendable, Codable, CustomStringConvertible {
  /// A unix domain socket.
  case unix(path: String)
  /// A TCP `host:port`; go-plugin plugins may choose it.
  case tcp(host: String, port: Int)

  package var description: String {
    switch self {
    case .unix(let path): "unix:\(path)"
    case .tcp(let host, let port): "\(host):\(port)"
    }
  }
}
