import DeckhandCore
import Testing

@Suite("go-plugin handshake line")
struct GoPluginHandshakeTests {
  @Test(
    "good lines parse",
    arguments: [
      ("1|1|unix|/tmp/plugin123|grpc|", GoPluginHandshake(appVersion: 1, network: .unix, address: "/tmp/plugin123")),
      ("1|1|unix|/tmp/plugin123|grpc", GoPluginHandshake(appVersion: 1, network: .unix, address: "/tmp/plugin123")),
      ("1|3|tcp|127.0.0.1:1234|grpc|\r", GoPluginHandshake(appVersion: 3, network: .tcp, address: "127.0.0.1:1234")),
    ])
  func parses(line: String, expected: GoPluginHandshake) throws {
    #expect(try GoPluginHandshake.parse(line, offeredVersions: [1, 3]) == expected)
  }

  @Test(
    "bad lines say what was expected and what came",
    arguments: [
      ("hello", "malformed handshake line \"hello\": expected CORE|APP|NETWORK|ADDRESS|grpc"),
      ("x|1|unix|/a|grpc|", "core version \"x\" is not a number"),
      ("2|1|unix|/a|grpc|", "core protocol version 2"),
      ("1|2|unix|/a|grpc|", "plugin chose app protocol version 2, but the host offered 1"),
      ("1|1|udp|/a|grpc|", "unsupported network \"udp\""),
      ("1|1|unix||grpc|", "empty address"),
      ("1|1|unix|/a|netrpc|", "speaks protocol \"netrpc\""),
      ("1|1|unix|/a", "speaks protocol \"netrpc\""),
      ("1|1|unix|/a|grpc|MIIBCERT", "TLS certificate"),
    ])
  func rejects(line: String, expected: String) {
    do {
      _ = try GoPluginHandshake.parse(line, offeredVersions: [1])
      Issue.record("\(line) parsed")
    } catch {
      #expect(error.code == .handshakeFailed)
      #expect(error.message.contains(expected), "\(error.message)")
    }
  }

  @Test("chatter is told apart from a handshake attempt")
  func chatter() {
    #expect(!GoPluginHandshake.looksLikeHandshake("starting up"))
    #expect(!GoPluginHandshake.looksLikeHandshake("a|b|c"))
    #expect(GoPluginHandshake.looksLikeHandshake("1|1|unix|/tmp/x|grpc|"))
    #expect(GoPluginHandshake.looksLikeHandshake("9|9|x|y"))
  }

  @Test("the line a plugin prints parses back")
  func roundTrip() throws {
    let handshake = GoPluginHandshake(appVersion: 4, network: .unix, address: "/run/p.sock")
    #expect(handshake.line() == "1|4|unix|/run/p.sock|grpc|")
    #expect(try GoPluginHandshake.parse(handshake.line(), offeredVersions: [4]) == handshake)
  }

  @Test(
    "a unix socket directly inside the plugin's folder, or loopback TCP, is where the host connects",
    arguments: [
      (
        GoPluginHandshake.Network.unix, "/run/dh/echo.d/plugin123",
        GoPluginHandshake.Endpoint.unix(path: "/run/dh/echo.d/plugin123")
      ),
      (.tcp, "127.0.0.1:1234", .tcp(host: "127.0.0.1", port: 1234)),
      (.tcp, "127.1.2.3:80", .tcp(host: "127.1.2.3", port: 80)),
      (.tcp, "[::1]:9000", .tcp(host: "::1", port: 9000)),
      (.tcp, "localhost:10000", .tcp(host: "localhost", port: 10000)),
    ])
  func allowedEndpoints(network: GoPluginHandshake.Network, address: String, expected: GoPluginHandshake.Endpoint)
    throws
  {
    let handshake = GoPluginHandshake(appVersion: 1, network: network, address: address)
    #expect(try handshake.checkedEndpoint(socketFolder: "/run/dh/echo.d") == expected)
  }

  @Test(
    "anything else fails the launch, naming the address",
    arguments: [
      (GoPluginHandshake.Network.unix, "/etc/shadow"), (.unix, "/run/dh/echo.d/../other.sock"),
      (.unix, "/run/dh/echo.d/sub/x"), (.unix, "/run/dh/echo.d/"), (.unix, "/run/dh/echo.d/.."),
      (.unix, "/run/dh/echo.dx/p"), (.unix, "relative.sock"), (.unix, "/run/dh/other.d/p"),
      (.tcp, "10.0.0.5:80"), (.tcp, "0.0.0.0:80"), (.tcp, "example.org:443"), (.tcp, "127.0.0.1:0"),
      (.tcp, "127.0.0.1:70000"), (.tcp, "127.0.0.1"), (.tcp, "127.0.0.256:80"), (.tcp, "[::]:80"),
    ])
  func refusedEndpoints(network: GoPluginHandshake.Network, address: String) {
    let handshake = GoPluginHandshake(appVersion: 1, network: network, address: address)
    #expect {
      try handshake.checkedEndpoint(socketFolder: "/run/dh/echo.d")
    } throws: { error in
      (error as? DeckhandError)?.code == .handshakeFailed && "\(error)".contains(address)
    }
  }
}
