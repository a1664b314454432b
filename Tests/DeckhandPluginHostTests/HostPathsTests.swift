import DeckhandCore
import DeckhandPluginHost
import Testing

@Suite("HostPaths: every per-plugin path is one component inside its root")
struct HostPathsTests {
  let paths = HostPaths(stateDirectory: "/var/lib/dh", runtimeDirectory: "/run/dh")

  @Test("a valid name gives paths directly inside their roots")
  func valid() throws {
    #expect(try paths.pluginStateDirectory("echo") == "/var/lib/dh/plugins/echo")
    #expect(try paths.errorLog("echo") == "/var/lib/dh/logs/echo.errors.log")
    #expect(try paths.socket("echo") == "/run/dh/echo.sock")
    #expect(try paths.socketFolder("echo") == "/run/dh/echo.d")
    #expect(try paths.hostAPISocket("echo") == "/run/dh/echo.host.sock")
  }

  @Test("., .., a slash or any invalid name is refused by every path", arguments: [".", "..", "a/b", "../x", "", "A"])
  func refused(name: String) {
    #expect(throws: DeckhandError.self) { try paths.pluginStateDirectory(name) }
    #expect(throws: DeckhandError.self) { try paths.stderrLog(name) }
    #expect(throws: DeckhandError.self) { try paths.socket(name) }
    #expect(throws: DeckhandError.self) { try HostPaths.child("/root", plugin: name, "") }
  }

  @Test("child refuses what is not a single component", arguments: [".", "..", "", "a/b", "a\u{0}b"])
  func child(component: String) {
    #expect(throws: DeckhandError.self) { try HostPaths.child("/root", component) }
  }
}
