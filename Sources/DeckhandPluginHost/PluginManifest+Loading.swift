package import DeckhandCore
internal import Foundation

extension PluginManifest {
  /// Reads and parses the manifest at `path` (absolute or relative to the
  /// current directory).
  ///
  /// - Throws: ``DeckhandCore/DeckhandError`` naming the file and every
  ///   problem in it.
  package static func load(path: String) throws -> PluginManifest {
    let absolute =
      path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    let standardized = URL(fileURLWithPath: absolute).standardizedFileURL.path
    guard let data = FileManager.default.contents(atPath: standardized) else {
      let reason = FileManager.default.fileExists(atPath: standardized) ? "cannot be read" : "does not exist"
      throw DeckhandError(.manifestInvalid, "\(standardized): manifest \(reason)")
    }
    return try PluginManifest.parse(data, path: standardized)
  }
}
