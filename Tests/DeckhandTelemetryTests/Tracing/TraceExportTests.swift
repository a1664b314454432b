import DeckhandCore
import Testing

@testable import DeckhandTelemetry

@Suite("TraceExport: which endpoint, and refusing bad ones")
struct TraceExportTests {
  @Test("off without a flag or variable; the flag wins, then the traces variable, then the general one")
  func precedence() throws {
    #expect(try TraceExport.endpoint(flag: nil, environment: [:]) == nil)
    #expect(try TraceExport.endpoint(flag: nil, environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": ""]) == nil)
    let both = [
      "OTEL_EXPORTER_OTLP_ENDPOINT": "http://general:4317", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4317",
    ]
    #expect(try TraceExport.endpoint(flag: nil, environment: both) == "http://traces:4317")
    #expect(
      try TraceExport.endpoint(flag: nil, environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4317"])
        == "https://c:4317")
    #expect(try TraceExport.endpoint(flag: "http://flag:4317", environment: both) == "http://flag:4317")
  }

  @Test(
    "an endpoint that is not an http(s) URL with a host is refused, naming it",
    arguments: [
      "collector:4317", "grpc://collector:4317", "http://", "http://:4317", "ftp://x", "/tmp/socket",
    ])
  func refused(_ endpoint: String) {
    #expect {
      _ = try TraceExport.endpoint(flag: endpoint, environment: [:])
    } throws: { error in
      (error as? DeckhandError)?.code == .configurationInvalid
        && (error as? DeckhandError)?.message.contains(endpoint) == true
    }
  }
}
