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
}
