internal import DeckhandCore
package import Foundation

/// Where the CLI finds a server and an operator token when neither
/// `--server`/`--token` nor `DECKHAND_SERVER`/`DECKHAND_TOKEN` say:
/// `$XDG_CONFIG_HOME/deckhand/client.json` (or `~/.config/…`), written by
/// `deckhand server` and `deckhand dev` on this machine (0600).
package struct ClientSettings: Codable, Sendable, Hashable {
  package var server: String
  package var token: String

  package init(server: String, token: String) {
    self.server = server
    self.token = token
  }

  package static var defaultPath: String {
    let environment = ProcessInfo.processInfo.environment
    let base =
      environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
      ?? "\(environment["HOME"] ?? NSHomeDirectory())/.config"
    return "\(base)/deckhand/client.json"
  }

  package func write(to path: String) throws {
    let folder = (path as NSString).deletingLastPathComponent
    try FileManager.default.createDirectory(
      atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    guard
      FileManager.default.createFile(
        atPath: path, contents: try encoder.encode(self), attributes: [.posixPermissions: 0o600])
    else {
      throw DeckhandError(
        .configurationInvalid,
        "cannot write \(path): \(String(cString: strerror(errno))); set XDG_CONFIG_HOME to a writable folder")
    }
  }

  package static func read(from path: String = defaultPath) -> ClientSettings? {
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    return try? JSONDecoder().decode(ClientSettings.self, from: data)
  }

  /// The server and token to use: flags, then the environment, then the
  /// settings file.
  package static func resolve(server: String?, token: String?) throws -> (ServerEndpoint, String) {
    let environment = ProcessInfo.processInfo.environment
    let file = read()
    guard let serverText = server ?? environment["DECKHAND_SERVER"] ?? file?.server else {
      throw DeckhandError(
        .configurationInvalid,
        "no server: pass --server HOST:PORT or set DECKHAND_SERVER (or run deckhand server / deckhand dev here)")
    }
    guard let tokenText = token ?? environment["DECKHAND_TOKEN"] ?? file?.token else {
      throw DeckhandError(.configurationInvalid, "no token: pass --token or set DECKHAND_TOKEN")
    }
    return (try ServerEndpoint(parsing: serverText), tokenText.trimmingCharacters(in: .whitespacesAndNewlines))
  }
}
