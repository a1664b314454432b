internal import Crypto
internal import DeckhandCore
internal import Foundation

/// SHA-256 of files, for the manifest's `sha256` pin.
package enum FileDigest {
  /// The lowercase hex SHA-256 of the file at `path`.
  package static func sha256(ofFile path: String) throws -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw DeckhandError(.launchFailed, "cannot read \(path) to check its sha256: \(String(cString: strerror(errno)))")
    }
    defer { try? handle.close() }
    var hasher = SHA256()
    do {
      while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
        hasher.update(data: chunk)
      }
    } catch {
      throw DeckhandError(.launchFailed, "cannot read \(path) to check its sha256: \(error)", cause: error)
    }
    return HexText.encode(hasher.finalize())
  }
}
