import DeckhandTelemetry
import GRPCCore
import Testing

@Suite("GRPCServerMetrics: calls by service, method and code")
struct GRPCServerMetricsTests {
  static let known = MethodDescriptor(fullyQualifiedService: "test.v1.Echo", method: "Get")

  /// A service that registers `known` only.
  struct EchoService: RegistrableRPCService {
    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
      router.registerHandler(
        forMethod: GRPCServerMetricsTests.known, deserializer: Bytes(), serializer: Bytes()
      ) { _, _ in StreamingServerResponse(single: ServerResponse(message: [UInt8]())) }
    }
  }

  func call(
    _ interceptor: GRPCServerMetrics, _ descriptor: MethodDescriptor,
    answer: @escaping @Sendable () async throws -> StreamingServerResponse<[UInt8]>
  ) async throws {
    let context = ServerContext(
      descriptor: descriptor, remotePeer: "ipv4:127.0.0.1:1", localPeer: "ipv4:127.0.0.1:2",
      cancellation: .init())
    let request = StreamingServerRequest<[UInt8]>(
      metadata: [:], messages: RPCAsyncSequence(wrapping: AsyncThrowingStream { $0.finish() }))
    let response = try await interceptor.intercept(request: request, context: context) { _, _ in try await answer() }
    if case .success(let contents) = response.accepted {
      let writer = RPCWriter(wrapping: Discard())
      _ = try? await contents.producer(writer)
    }
  }

  /// Messages as their bytes.
  struct Bytes: MessageSerializer, MessageDeserializer {
    func serialize<Out: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Out { Out(message) }
    func deserialize<In: GRPCContiguousBytes>(_ serializedMessageBytes: In) throws -> [UInt8] {
      serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
  }

  struct Discard: RPCWriterProtocol {
    func write(_ element: [UInt8]) async throws {}
    func write(contentsOf elements: some Sequence<[UInt8]>) async throws {}
  }

  @Test("OK, a refused call, a failing producer and a thrown error are counted by their codes")
  func countsByCode() async throws {
    let registry = MetricsRegistry()
    let interceptor = GRPCServerMetrics(
      registry: registry, services: [EchoService()], transport: InProcessTransportStandIn.self)
    try await call(interceptor, Self.known) { StreamingServerResponse(single: ServerResponse(message: [])) }
    try await call(interceptor, Self.known) {
      StreamingServerResponse(error: RPCError(code: .permissionDenied, message: "no"))
    }
    try await call(interceptor, Self.known) {
      StreamingServerResponse { _ in throw RPCError(code: .notFound, message: "gone") }
    }
    try? await call(interceptor, Self.known) { throw RPCError(code: .unavailable, message: "down") }
    // A method the server does not serve cannot grow the label set.
    try await call(
      interceptor, MethodDescriptor(fullyQualifiedService: "evil.Service", method: "X\(Int.random(in: 0..<1000))")
    ) {
      StreamingServerResponse(single: ServerResponse(message: []))
    }
    let text = String(decoding: await registry.scrape(), as: UTF8.self)
    let base = #"deckhand_grpc_server_requests_total{service="test.v1.Echo",method="Get",code="#
    for code in ["OK", "PERMISSION_DENIED", "NOT_FOUND", "UNAVAILABLE"] {
      #expect(text.contains(base + "\"\(code)\"} 1"), "\(code) in\n\(text)")
    }
    #expect(text.contains(#"{service="unknown",method="unknown",code="OK"} 1"#))
    #expect(!text.contains("evil"))
    #expect(
      text.contains(#"deckhand_grpc_server_request_duration_seconds_count{service="test.v1.Echo",method="Get"} 4"#))
  }

  @Test("status code names are gRPC's")
  func codeNames() {
    #expect(GRPCServerMetrics.code(of: RPCError(code: .deadlineExceeded, message: "")) == "DEADLINE_EXCEEDED")
    #expect(GRPCServerMetrics.code(of: RPCError(code: .internalError, message: "")) == "INTERNAL")
    struct Other: Error {}
    #expect(GRPCServerMetrics.code(of: Other()) == "UNKNOWN")
  }
}

/// A transport type for the router the interceptor reads its methods from
/// (never started).
struct InProcessTransportStandIn: ServerTransport {
  typealias Bytes = [UInt8]
  func listen(
    streamHandler:
      @escaping @Sendable (
        _ stream: RPCStream<Inbound, Outbound>, _ context: ServerContext
      ) async -> Void
  ) async throws {}
  func beginGracefulShutdown() {}
}
