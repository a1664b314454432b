import DeckhandCore
import DeckhandTelemetry
import DeckhandTestSupport
import Foundation
import Logging
import Prometheus
import Testing

@Suite("MetricsEndpoint: GET /metrics on HTTP/1.1, bounded against hostile clients")
struct MetricsEndpointTests {
  /// Runs an endpoint on a free loopback port for `body`.
  func withEndpoint(_ body: @Sendable (Int) async throws -> Void) async throws {
    let registry = MetricsRegistry()
    registry.counter("probe_total", "A counter for the test.").increment()
    let endpoint = MetricsEndpoint(
      host: "127.0.0.1", port: 0, registry: registry, logger: Logger(label: "test"))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await endpoint.run() }
      let port = try #require(await endpoint.listeningPort)
      try await body(port)
      group.cancelAll()
    }
  }

  @Test("serves the registry in the text format, with keep-alive and HEAD")
  func serves() async throws {
    try await withEndpoint { port in
      let answer = try await HTTPProbe.get(port: port, "/metrics")
      #expect(answer.status == 200)
      #expect(answer.head.contains("text/plain; version=0.0.4"))
      #expect(answer.body.contains("deckhand_probe_total 1"))
      // Two requests on one connection, the second closing it.
      let both = try await HTTPProbe.send(
        port: port,
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nHEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      #expect(both.status == 200)
      #expect(both.body.components(separatedBy: "HTTP/1.1 200 OK").count == 2, "\(both)")
    }
  }

  @Test("a port that is taken is an error that names it")
  func portTaken() async throws {
    try await withEndpoint { port in
      let second = MetricsEndpoint(
        host: "127.0.0.1", port: port, registry: MetricsRegistry(), logger: Logger(label: "test"))
      await #expect(throws: DeckhandError.self) { try await second.run() }
      #expect(await second.listeningPort == nil)
    }
  }

  @Test("more than maxConnections open connections: the rest are closed at once, and it serves again later")
  func connectionCap() async throws {
    try await withEndpoint { port in
      var held: [Int32] = []
      defer { for fd in held { close(fd) } }
      for _ in 0..<MetricsEndpoint.maxConnections { held.append(try HTTPProbe.connect(port)) }
      // Give the server time to accept them all.
      try await Task.sleep(for: .milliseconds(300))
      #expect(try await HTTPProbe.closesSilentConnection(port: port, within: .seconds(3)))
      for fd in held { close(fd) }
      held = []
      let served = await eventually(timeout: .seconds(5)) {
        (try? await HTTPProbe.get(port: port, "/metrics"))?.status == 200
      }
      #expect(served)
    }
  }
}
