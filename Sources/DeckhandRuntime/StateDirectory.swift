package import DeckhandCore
internal import Foundation

/// Keeps a state directory private: the agent and the server hold
/// credentials, the CA key, databases and plugin configs there, and run as
/// root on fleets of machines.
///
/// ``secure(_:traversable:)`` runs once at start, before anything is opened:
/// - sets the process's umask to 077, so every file made later (SQLite's
///   database, `-wal` and `-shm`, artifacts, unpacked packages, logs) is
///   private whatever the code that makes it asks for;
/// - makes the root (0700) if it is missing, and refuses a root that is not
///   a folder, belongs to another user, or that group or others may write
///   (anyone who can rename entries in it can swap the files the daemon
///   trusts);
/// - takes group and other permissions off everything already inside (a
///   directory that an older version or an operator made with looser
///   modes), without following symlinks; folders named in `traversable`
///   keep execute-only (0711) so that a plugin run as another user can reach
///   its own state directory below them and nothing else.
package enum StateDirectory {
  /// Makes `root` private as described above.
  ///
  /// - Parameters:
  ///   - root: The state directory, absolute.
  ///   - traversable: Folders below `root` (relative, such as `plugins`)
  ///     that stay 0711 when they already are (isolated plugins pass them).
  /// - Throws: ``DeckhandError`` `configurationInvalid` naming the path, what
  ///   is wrong with it and the command that fixes it.
  package static func secure(_ root: String, traversable: Set<String> = []) throws(DeckhandError) {
    umask(0o077)
    if mkdir(root, 0o700) != 0 && errno != EEXIST {
      // A missing parent: make the chain, still private.
      do {
        try FileManager.default.createDirectory(
          atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      } catch {
        throw DeckhandError(
          .configurationInvalid,
          "cannot create the state directory \(root): \(error.localizedDescription); choose another --state-dir")
      }
    }
    var info = stat()
    guard lstat(root, &info) == 0 else {
      throw DeckhandError(
        .configurationInvalid, "cannot read the state directory \(root): \(String(cString: strerror(errno)))")
    }
    guard (info.st_mode & S_IFMT) == S_IFDIR else {
      throw DeckhandError(.configurationInvalid, "the state directory \(root) is not a folder (a symlink or a file)")
    }
    guard info.st_uid == geteuid() else {
      throw DeckhandError(
        .configurationInvalid,
        "the state directory \(root) belongs to uid \(info.st_uid), not to this process's user (uid \(geteuid())); chown it or choose another --state-dir"
      )
    }
    guard info.st_mode & 0o022 == 0 else {
      throw DeckhandError(
        .configurationInvalid,
        "the state directory \(root) may be written by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); chmod go-w \(root)"
      )
    }
    tighten(root, relative: "", traversable: traversable, mode: info.st_mode)
  }

  /// Takes group and other bits off `path` and everything below it.
  private static func tighten(_ path: String, relative: String, traversable: Set<String>, mode: mode_t) {
    let isFolder = (mode & S_IFMT) == S_IFDIR
    let keepsTraversal = isFolder && (relative.isEmpty || traversable.contains(relative)) && mode & 0o777 == 0o711
    if mode & 0o077 != 0 && !keepsTraversal {
      chmod(path, mode & 0o7700)
    }
    guard isFolder, let entries = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
    for entry in entries {
      let child = "\(path)/\(entry)"
      var info = stat()
      // lstat: a symlink is tightened itself (a no-op) and never followed.
      guard lstat(child, &info) == 0, (info.st_mode & S_IFMT) != S_IFLNK else { continue }
      tighten(
        child, relative: relative.isEmpty ? entry : "\(relative)/\(entry)", traversable: traversable, mode: info.st_mode
      )
    }
  }
}
