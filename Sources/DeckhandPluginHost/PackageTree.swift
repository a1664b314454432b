internal import Crypto
package import DeckhandCore
internal import Foundation

/// A plugin package's folder as one digest, and copied as it is read: what
/// a signature covers is every file beside the manifest (a signed Python
/// plugin imports modules from there), and what runs is the copy whose
/// bytes were hashed, in a folder only root can change.
///
/// The digest is SHA-256 over one line per entry, sorted by path:
/// `f MODE SHA256 PATH`, `l 0 TARGET PATH` or `d MODE - PATH`, with MODE
/// the owner's permission bits in octal (whether a file is executable; the
/// group and other bits are the installer's business). Signature files
/// (`*.sig`) are left out.
/// Devices, FIFOs and sockets are refused, as are set-uid and set-gid
/// files.
package enum PackageTree {
  /// At most this many entries and bytes in a package (a manifest put in a
  /// busy folder by mistake is refused, not hashed for minutes).
  package static let maxEntries = 10_000
  package static let maxBytes: Int64 = 1 << 30

  /// The digest of the folder `root`; with `copyTo`, also writes every
  /// entry there (private to its owner until ``share(_:group:)``), from
  /// the same bytes it hashes.
  package static func digest(of root: String, copyTo: String? = nil) throws -> String {
    var walk = Walk(root: root, copyTo: copyTo)
    if let copyTo {
      guard mkdir(copyTo, 0o700) == 0 || errno == EEXIST else {
        throw DeckhandError(.launchFailed, "cannot create \(copyTo): \(String(cString: strerror(errno)))")
      }
      chmod(copyTo, 0o700)
    }
    try walk.visit("", depth: 0)
    return HexText.encode(SHA256.hash(data: Array(walk.lines.utf8)))
  }

  /// Copies the single file `source` to `destination` and returns its
  /// SHA-256, from the bytes copied.
  package static func copyFile(_ source: String, to destination: String, mode: UInt32) throws -> String {
    var bytes: Int64 = 0
    return try copy(source, to: destination, mode: mode_t(mode), bytes: &bytes)
  }

  private struct Walk {
    let root: String
    let copyTo: String?
    var lines = ""
    var entries = 0
    var bytes: Int64 = 0

    mutating func visit(_ relative: String, depth: Int) throws {
      guard depth < 64 else { throw refusal("\(relative) is nested more than 64 folders deep") }
      let folder = relative.isEmpty ? root : "\(root)/\(relative)"
      let names: [String]
      do {
        names = try FileManager.default.contentsOfDirectory(atPath: folder)
      } catch {
        throw refusal("cannot list \(folder): \(error.localizedDescription)")
      }
      for name in names.sorted() where !name.hasSuffix(".sig") {
        let path = relative.isEmpty ? name : "\(relative)/\(name)"
        entries += 1
        guard entries <= PackageTree.maxEntries else {
          throw refusal("more than \(PackageTree.maxEntries) files under \(root)")
        }
        var info = stat()
        guard lstat("\(root)/\(path)", &info) == 0 else {
          throw refusal("cannot read \(root)/\(path): \(String(cString: strerror(errno)))")
        }
        let mode = info.st_mode & 0o7777
        guard mode & (S_ISUID | S_ISGID) == 0 || info.st_mode & S_IFMT == S_IFDIR else {
          throw refusal("\(root)/\(path) is set-uid or set-gid")
        }
        let target = copyTo.map { "\($0)/\(path)" }
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
          lines += "d \(String(mode & 0o700, radix: 8)) - \(path)\n"
          if let target {
            guard mkdir(target, 0o700) == 0 || errno == EEXIST else {
              throw refusal("cannot create \(target): \(String(cString: strerror(errno)))")
            }
          }
          try visit(path, depth: depth + 1)
        case S_IFREG:
          // The owner's bits only: what runs is never writable by others.
          let kept = mode & 0o700
          let digest: String
          if let target {
            digest = try PackageTree.copy("\(root)/\(path)", to: target, mode: kept, bytes: &bytes)
          } else {
            digest = try PackageTree.hash("\(root)/\(path)", bytes: &bytes)
          }
          lines += "f \(String(kept, radix: 8)) \(digest) \(path)\n"
        case S_IFLNK:
          let destination = try FileManager.default.destinationOfSymbolicLink(atPath: "\(root)/\(path)")
          lines += "l 0 \(destination) \(path)\n"
          if let target { try FileManager.default.createSymbolicLink(atPath: target, withDestinationPath: destination) }
        default:
          throw refusal("\(root)/\(path) is a device, FIFO or socket; a package holds files, folders and links")
        }
      }
    }

    func refusal(_ problem: String) -> DeckhandError {
      DeckhandError(.signatureInvalid, "plugin package \(root): \(problem)")
    }
  }

  /// Gives the copy at `root` to root and, when `group` is given, lets that
  /// group read it and enter its folders (never write): a plugin run as
  /// another user reaches only its own package. Links are not followed.
  package static func share(_ root: String, group: UInt32?) {
    func visit(_ path: String) {
      var info = stat()
      guard lstat(path, &info) == 0 else { return }
      let kind = info.st_mode & S_IFMT
      if kind == S_IFLNK { return }
      let owner = info.st_mode & 0o700
      let groupBits: mode_t = group == nil ? 0 : (owner >> 3) & 0o050
      lchown(path, 0, group ?? 0)
      chmod(path, owner | groupBits)
      guard kind == S_IFDIR else { return }
      for entry in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] { visit("\(path)/\(entry)") }
    }
    visit(root)
  }

  private static func hash(_ path: String, bytes: inout Int64) throws -> String {
    try copy(path, to: nil, mode: 0, bytes: &bytes)
  }

  /// Reads `path` (not following a link) once, hashing what it reads and
  /// writing it to `destination` when given.
  private static func copy(_ path: String, to destination: String?, mode: mode_t, bytes: inout Int64) throws
    -> String
  {
    let input = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
    guard input >= 0 else {
      throw DeckhandError(.signatureInvalid, "cannot read \(path): \(String(cString: strerror(errno)))")
    }
    defer { close(input) }
    var output: Int32 = -1
    if let destination {
      unlink(destination)
      output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
      guard output >= 0 else {
        throw DeckhandError(.launchFailed, "cannot write \(destination): \(String(cString: strerror(errno)))")
      }
      fchmod(output, mode)
    }
    defer { if output >= 0 { close(output) } }
    var hasher = SHA256()
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while true {
      let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
      if count < 0 && errno == EINTR { continue }
      guard count >= 0 else {
        throw DeckhandError(.signatureInvalid, "cannot read \(path): \(String(cString: strerror(errno)))")
      }
      if count == 0 { break }
      bytes += Int64(count)
      guard bytes <= maxBytes else {
        throw DeckhandError(.signatureInvalid, "plugin package: more than \(maxBytes >> 20) MiB to hash at \(path)")
      }
      hasher.update(data: buffer[0..<count])
      if output >= 0 {
        var written = 0
        while written < count {
          let step = buffer.withUnsafeBytes { write(output, $0.baseAddress! + written, count - written) }
          if step < 0 && errno == EINTR { continue }
          guard step > 0 else {
            throw DeckhandError(.launchFailed, "cannot write \(destination ?? ""): \(String(cString: strerror(errno)))")
          }
          written += step
        }
      }
    }
    return HexText.encode(hasher.finalize())
  }
}
