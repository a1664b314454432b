import DeckhandClient
import DeckhandCore
import Testing

@Suite("ServerEndpoint: HOST:PORT")
struct ServerEndpointTests {
  @Test(
    "HOST, HOST:PORT and [IPv6]:PORT read back; a bare host gets the default port",
    arguments: [
      ("example.org", "example.org", 7380), ("10.0.0.1:9000", "10.0.0.1", 9000), ("[::1]:7000", "::1", 7000),
      ("[fe80::1]", "fe80::1", 7380),
    ])
  func parses(text: String, host: String, port: Int) throws {
    let endpoint = try ServerEndpoint(parsing: text)
    #expect(endpoint.host == host && endpoint.port == port)
    #expect(try ServerEndpoint(parsing: endpoint.description) == endpoint)
  }

  @Test("a bad port or no host is refused, naming the text", arguments: ["host:99999", "host:x", ":7380", "host:-1"])
  func refuses(text: String) {
    #expect {
      try ServerEndpoint(parsing: text)
    } throws: { error in
      (error as? DeckhandError)?.code == .configurationInvalid
        && (error as? DeckhandError)?.message.contains(text) == true
    }
  }
}
