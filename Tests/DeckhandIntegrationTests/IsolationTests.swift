import DeckhandCore
import DeckhandPluginHost
import DeckhandProtocol
import DeckhandTestSupport
import Foundation
import Testing

@Suite("Isolation")
struct IsolationTests {
  /// A TCP listener on the host's 127.0.0.1; returns its descriptor and port.
  static func listener() throws -> (Int32, UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
        bind(fd, pointer, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, pointer, &length) == 0
      }
    }
    guard bound else { throw DeckhandError(.internalError, "cannot listen on 127.0.0.1") }
    return (fd, UInt16(bigEndian: address.sin_port))
  }

  /// Launches the test plugin with `isolation`, sends Start, asks GetStatus
  /// with each of `queries`, stops it; returns the first result of each.
  static func ask(_ isolation: [String: Any], _ queries: [String], workspace: borrowing TestWorkspace) async throws
    -> [String]
  {
    let tag = "iso-\(UUID().uuidString.prefix(6))"
    let manifest = try workspace.manifest(
      Fixtures.testPlugin("iso", args: [], tag: tag, extra: ["isolation": isolation]))
    let plugin = try await workspace.launcher.launch(manifest)
    let answers = try await LeanPluginTransport().withConnection(to: plugin.address) { connection in
      try await connection.start(try plugin.startRequest(), timeout: .seconds(10))
      var answers: [String] = []
      for query in queries {
        answers.append(try await connection.getStatus(data: query, timeout: .seconds(5)).results.first ?? "")
      }
      if isolation["no_new_privileges"] as? Bool == true {
        let status = try String(contentsOfFile: "/proc/\(plugin.pid)/status", encoding: .utf8)
        answers.append(status.split(separator: "\n").first { $0.hasPrefix("NoNewPrivs") }.map(String.init) ?? "")
      }
      return answers
    }
    _ = await plugin.stop(using: nil, cleanup: false)
    #expect(processes(withArgument: tag).isEmpty)
    return answers
  }

  @Test("a plugin in network \"none\" cannot reach a listener on the host's loopback; one on the host's network can")
  func network() async throws {
    let workspace = try TestWorkspace()
    let (fd, port) = try Self.listener()
    defer { close(fd) }
    let isolated = try await Self.ask(["network": "none"], ["connect:\(port)"], workspace: workspace)
    #expect(isolated == ["connect=errno\(ECONNREFUSED)"])
    let open = try await Self.ask([:], ["connect:\(port)"], workspace: workspace)
    #expect(open == ["connect=ok"])
  }

  @Test("pid namespace, read-only paths and no_new_privileges")
  func namespaces() async throws {
    let workspace = try TestWorkspace()
    let readonly = "\(workspace.root)/ro"
    let writable = "\(workspace.root)/rw"
    for folder in [readonly, writable] {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }
    let answers = try await Self.ask(
      ["pid_namespace": true, "mount_namespace": true, "readonly_paths": [readonly], "no_new_privileges": true],
      ["pid", "write:\(readonly)/file", "write:\(writable)/file"], workspace: workspace)
    #expect(answers.prefix(3) == ["pid=1", "write=refused", "write=ok"], "\(answers)")
    // With a pid namespace, the process the host watches is the plugin's
    // parent; no_new_privs is set before the fork, so it holds there too.
    #expect(answers.last?.hasSuffix("1") == true, "\(answers)")
    #expect(!FileManager.default.fileExists(atPath: "\(readonly)/file"))
  }

  @Test("a plugin runs as another user, with its own socket folder and its state directory")
  func otherUser() async throws {
    let workspace = try TestWorkspace()
    let stateFile = try workspace.paths.pluginStateDirectory("iso") + "/written-by-plugin"
    let answers = try await Self.ask(
      ["user": "daemon", "no_new_privileges": true], ["uid", "write:\(stateFile)"], workspace: workspace)
    let daemon = getpwnam("daemon").pointee
    #expect(answers.prefix(2) == ["uid=\(daemon.pw_uid) gid=\(daemon.pw_gid)", "write=ok"], "\(answers)")
    var info = stat()
    #expect(stat(stateFile, &info) == 0 && info.st_uid == daemon.pw_uid)
  }

  @Test("isolation in a manifest is checked like every other field")
  func manifest() throws {
    let workspace = try TestWorkspace()
    let base: [String: Any] = ["name": "x", "version": "1", "entrypoint": "/bin/true"]
    for bad: [String: Any] in [
      ["network": "bridge"], ["readonly_paths": ["/etc"]], ["mount_namespace": true, "readonly_paths": ["etc"]],
      ["pid_namespace": "yes"], ["chroot": "/"],
    ] {
      #expect(throws: DeckhandError.self, "\(bad)") { try workspace.manifest(base.merging(["isolation": bad]) { $1 }) }
    }
    let manifest = try workspace.manifest(
      base.merging(["isolation": ["network": "none", "user": "daemon", "optional": true]]) { $1 })
    #expect(manifest.isolation.network == .none && manifest.isolation.user == "daemon" && manifest.isolation.optional)
    #expect(!manifest.isolation.isEmpty)
  }
}
