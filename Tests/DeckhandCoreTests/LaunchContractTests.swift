import DeckhandCore
import Testing

@Suite("Launch contract detection (plugin side)")
struct LaunchContractTests {
  let deckhand = [PluginManifest.Handshake.deckhand]

  @Test("guest-agent flags, in both spellings, after the plugin's own")
  func guestAgent() throws {
    let joined = try LaunchContract.detect(
      arguments: ["--verbose", "--protocol=unix", "--address=/run/p.sock", "--errorlogfile=/var/log/p.log"],
      environment: [:], handshakes: deckhand)
    #expect(joined == .guestAgent(address: "/run/p.sock", errorLogFile: "/var/log/p.log"))
    let split = try LaunchContract.detect(
      arguments: ["--address", "/run/p.sock", "--protocol", "unix"], environment: [:], handshakes: deckhand)
    #expect(split == .guestAgent(address: "/run/p.sock", errorLogFile: nil))
  }

  @Test("guest-agent with another protocol is refused")
  func guestAgentTCP() {
    #expect(throws: DeckhandError.self) {
      try LaunchContract.detect(
        arguments: ["--protocol=tcp", "--address=127.0.0.1:1"], environment: [:], handshakes: deckhand)
    }
  }

  @Test("go-plugin needs the cookie and a common version")
  func goPlugin() throws {
    let cookie = PluginManifest.Handshake.deckhand
    var environment = [cookie.cookieKey: cookie.cookieValue, "PLUGIN_PROTOCOL_VERSIONS": "1,2"]
    #expect(
      try LaunchContract.detect(arguments: [], environment: environment, handshakes: deckhand)
        == .goPlugin(appVersion: 1, socketDirectory: "/tmp"))
    environment["PLUGIN_UNIX_SOCKET_DIR"] = "/run/deckhand"
    #expect(
      try LaunchContract.detect(arguments: [], environment: environment, handshakes: deckhand)
        == .goPlugin(appVersion: 1, socketDirectory: "/run/deckhand"))
    environment[cookie.cookieKey] = "wrong"
    #expect(try LaunchContract.detect(arguments: [], environment: environment, handshakes: deckhand) == nil)
    environment[cookie.cookieKey] = cookie.cookieValue
    environment["PLUGIN_PROTOCOL_VERSIONS"] = "5"
    #expect(throws: DeckhandError.self) {
      try LaunchContract.detect(arguments: [], environment: environment, handshakes: deckhand)
    }
  }

  @Test("run by hand, there is no contract")
  func none() throws {
    #expect(
      try LaunchContract.detect(arguments: ["--help"], environment: ["HOME": "/root"], handshakes: deckhand) == nil)
  }
}
