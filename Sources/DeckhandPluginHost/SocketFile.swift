internal import Foundation

#if canImport(Glibc)
  internal import Glibc
#endif

/// Removes plugin sockets: only a socket, and only where the host puts
/// them. A socket's path can come from a plugin (a go-plugin handshake) or
/// from a state file, so the host checks both the place and the kind of
/// file before it unlinks anything; as root it would otherwise delete
/// whatever a plugin names (`1|1|unix|/etc/shadow|grpc|`).
enum SocketFile {
  /// Whether `path` is where the host puts plugin sockets: directly inside
  /// `runtimeDirectory` (`NAME.sock`, `NAME.host.sock`) or directly inside
  /// a plugin's folder there (`NAME.d/…`).
  static func isPlaced(_ path: String, runtimeDirectory: String) -> Bool {
    let root = runtimeDirectory.hasSuffix("/") ? String(runtimeDirectory.dropLast()) : runtimeDirectory
    guard path.hasPrefix(root + "/") else { return false }
    let parts = path.dropFirst(root.count + 1).split(separator: "/", omittingEmptySubsequences: false)
    let valid = { (part: Substring) in !part.isEmpty && part != "." && part != ".." }
    switch parts.count {
    case 1: return valid(parts[0])
    case 2: return valid(parts[0]) && parts[0].hasSuffix(".d") && valid(parts[1])
    default: return false
    }
  }

  /// Whether `path` itself (not what a symlink points to) is a socket.
  static func isSocket(_ path: String) -> Bool {
    var info = stat()
    return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK
  }

  /// Unlinks `path` if it is placed as ``isPlaced(_:runtimeDirectory:)``
  /// says and is a socket. Returns whether it did.
  @discardableResult
  static func remove(_ path: String, runtimeDirectory: String) -> Bool {
    guard isPlaced(path, runtimeDirectory: runtimeDirectory), isSocket(path) else { return false }
    return unlink(path) == 0
  }
}
