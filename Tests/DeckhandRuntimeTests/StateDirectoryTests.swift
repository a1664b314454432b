import DeckhandCore
import DeckhandRuntime
import Foundation
import Testing

@Suite("StateDirectory: private at start, whatever was there before", .serialized)
struct StateDirectoryTests {
  private func mode(_ path: String) -> mode_t {
    var info = stat()
    lstat(path, &info)
    return info.st_mode & 0o7777
  }

  /// Runs `body` in a fresh folder and restores the umask after it.
  private func inFolder(_ body: (String) throws -> Void) throws {
    let root = "/tmp/dhsd-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    let previous = umask(0o022)
    defer {
      umask(previous)
      try? FileManager.default.removeItem(atPath: root)
    }
    try body(root)
  }

  @Test("a missing state directory is made 0700, and files made after it are private")
  func makesPrivate() throws {
    try inFolder { root in
      let state = "\(root)/a/b/state"
      try StateDirectory.secure(state)
      #expect(mode(state) == 0o700)
      _ = FileManager.default.createFile(atPath: "\(state)/db.sqlite-wal", contents: Data("x".utf8))
      #expect(mode("\(state)/db.sqlite-wal") == 0o600, "umask 077")
    }
  }

  @Test("an existing tree with loose modes is tightened; symlinks are not followed; traversable folders stay 0711")
  func tightens() throws {
    try inFolder { root in
      let state = "\(root)/state"
      let outside = "\(root)/outside.txt"
      for folder in ["\(state)/plugins/echo", "\(state)/logs", "\(state)/artifacts"] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
      }
      chmod(state, 0o755)
      chmod("\(state)/plugins", 0o711)
      chmod("\(state)/artifacts", 0o755)
      for file in ["\(state)/server.sqlite", "\(state)/logs/echo.errors.log", "\(state)/plugins/echo/config.json"] {
        _ = FileManager.default.createFile(atPath: file, contents: Data("secret".utf8))
        chmod(file, 0o644)
      }
      _ = FileManager.default.createFile(atPath: outside, contents: Data("x".utf8))
      chmod(outside, 0o644)
      #expect(symlink(outside, "\(state)/link") == 0)

      try StateDirectory.secure(state, traversable: ["plugins"])
      #expect(mode(state) == 0o700)
      #expect(mode("\(state)/plugins") == 0o711, "kept for plugins run as other users")
      #expect(mode("\(state)/plugins/echo") == 0o700)
      #expect(mode("\(state)/artifacts") == 0o700)
      #expect(mode("\(state)/server.sqlite") == 0o600)
      #expect(mode("\(state)/logs/echo.errors.log") == 0o600)
      #expect(mode("\(state)/plugins/echo/config.json") == 0o600)
      #expect(mode(outside) == 0o644, "a symlink's target is not touched")
    }
  }

  @Test(
    "a root that group or others may write, or that is not a folder, is refused, saying what to do",
    arguments: [
      ("group-writable", "chmod go-w"), ("world-writable", "chmod go-w"), ("symlink", "not a folder"),
      ("file", "not a folder"),
    ])
  func refuses(kind: String, expected: String) throws {
    try inFolder { root in
      let state = "\(root)/state"
      switch kind {
      case "group-writable", "world-writable":
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        chmod(state, kind == "group-writable" ? 0o770 : 0o707)
      case "symlink":
        try FileManager.default.createDirectory(atPath: "\(root)/real", withIntermediateDirectories: true)
        symlink("\(root)/real", state)
      default:
        _ = FileManager.default.createFile(atPath: state, contents: nil)
      }
      #expect {
        try StateDirectory.secure(state)
      } throws: { error in
        (error as? DeckhandError)?.code == .configurationInvalid && "\(error)".contains(expected)
          && "\(error)".contains(state)
      }
    }
  }
}
