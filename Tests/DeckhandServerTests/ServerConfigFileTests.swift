import DeckhandCore
import DeckhandServer
import Foundation
import Testing

@Suite("ServerConfigFile: every flag has a key")
struct ServerConfigFileTests {
  @Test("the metrics, event, heartbeat and traces keys are read; an unknown key is refused naming it")
  func keys() throws {
    let path = FileManager.default.temporaryDirectory.path + "/server-\(UUID().uuidString.prefix(6)).toml"
    defer { try? FileManager.default.removeItem(atPath: path) }
    try """
    metrics_listen = "127.0.0.1:9380"
    event_retention = "1d"
    max_heartbeats_per_second = 250
    otlp_endpoint = "http://127.0.0.1:4317"
    """.write(toFile: path, atomically: true, encoding: .utf8)
    let file = try ServerConfigFile(path: path)
    #expect(file["metrics_listen"] == "127.0.0.1:9380")
    #expect(file["event_retention"] == "1d")
    #expect(file["max_heartbeats_per_second"] == "250")
    #expect(file["otlp_endpoint"] == "http://127.0.0.1:4317")
    try "metrics_listne = \"x\"\n".write(toFile: path, atomically: true, encoding: .utf8)
    #expect(throws: DeckhandError.self) { try ServerConfigFile(path: path) }
  }
}
