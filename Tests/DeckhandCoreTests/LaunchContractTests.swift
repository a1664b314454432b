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

  @Test("guest-agent over tcp (a Kubernetes pod) takes HOST:PORT; other protocols are refused")
  func guestAgentTCP() throws {
    let tcp = try LaunchContract.detect(
      arguments: ["--protocol=tcp", "--address=0.0.0.0:7070", "--errorlogfile=/dev/stderr"], environment: [:],
      handshakes: deckhand)
    #expect(tcp == .guestAgentTCP(host: "0.0.0.0", port: 7070, errorLogFile: "/dev/stderr"))
    let v6 = try LaunchContract.detect(
      arguments: ["--protocol=tcp", "--address=[::]:1"], environment: [:], handshakes: deckhand)
    #expect(v6 == .guestAgentTCP(host: "::", port: 1, errorLogFile: nil))
    for bad in [
      ["--protocol=tcp", "--address=nowhere"], ["--protocol=tcp", "--address=h:99999"],
      ["--protocol=udp", "--address=x"],
    ] {
      #expect(throws: DeckhandError.self, "\(bad)") {
        try LaunchContract.detect(arguments: bad, environment: [:], handshakes: deckhand)
      }
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
