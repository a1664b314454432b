import Foundation
import Testing

@testable import DeckhandPluginHost

@Suite("SocketFile: only sockets, only where the host puts them")
struct SocketFileTests {
  @Test(
    "placed: directly in the runtime folder or directly in a plugin's NAME.d there",
    arguments: [
      ("/run/dh/echo.sock", true), ("/run/dh/echo.host.sock", true), ("/run/dh/echo.d/plugin1", true),
      ("/run/dh/", false), ("/run/dh/../etc/x", false), ("/run/dh/echo.d/../../x", false), ("/run/dh/a/b", false),
      ("/run/dh/echo.d/sub/x", false), ("/run/dhx/echo.sock", false), ("/etc/shadow", false), ("/run/dh/./x", false),
    ])
  func placed(path: String, expected: Bool) {
    #expect(SocketFile.isPlaced(path, runtimeDirectory: "/run/dh") == expected)
  }

  @Test("a regular file or a symlink to a socket is never removed; a socket is")
  func removesOnlySockets() throws {
    let root = "/tmp/dhsf-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: root) }
    let file = "\(root)/file.sock"
    _ = FileManager.default.createFile(atPath: file, contents: Data("keep".utf8))
    #expect(!SocketFile.remove(file, runtimeDirectory: root))
    #expect(FileManager.default.fileExists(atPath: file))

    let socketPath = "\(root)/real.sock"
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { buffer in
      for (index, byte) in socketPath.utf8.enumerated() { buffer[index] = byte }
    }
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    #expect(bound == 0)
    let link = "\(root)/link.sock"
    #expect(symlink(socketPath, link) == 0)
    #expect(!SocketFile.remove(link, runtimeDirectory: root), "a symlink is not a socket, whatever it points to")
    #expect(SocketFile.isSocket(socketPath))
    #expect(SocketFile.remove(socketPath, runtimeDirectory: root))
    #expect(!FileManager.default.fileExists(atPath: socketPath))
  }
}
