import GRPCCore
import InMemoryTracing
import Synchronization
import Testing
import Tracing

@testable import DeckhandTelemetry

@Suite("gRPC tracing interceptors: the caller's trace in metadata, continued by the server")
struct GRPCTracingTests {
  static let method = MethodDescriptor(fullyQualifiedService: "deckhand.test.v1.Test", method: "Call")

  final class Seen: Sendable {
    let metadata = Mutex<Metadata>([:])
    let context = Mutex<InMemorySpanContext?>(nil)
  }

  @Test("a client call inside a span is a child span whose context goes in the metadata; outside, none")
  func client() async throws {
    let tracer = InMemoryTracer()
    let seen = Seen()
    let interceptor = ClientTracingInterceptor()
    let context = ClientContext(descriptor: Self.method, remotePeer: "peer", localPeer: "local")
    func call() async throws {
      _ = try await interceptor.intercept(
        request: StreamingClientRequest(of: Int.self, metadata: ["authorization": "Bearer x"]) { _ in },
        context: context
      ) { request, _ in
        seen.metadata.withLock { $0 = request.metadata }
        return StreamingClientResponse(of: Int.self, error: RPCError(code: .unavailable, message: "test"))
      }
    }
    try await withTracer(tracer) {
      try await call()
      #expect(seen.metadata.withLock { $0[stringValues: InMemoryTracer.traceIDKey].first(where: { _ in true }) } == nil)
      try await withSpan("command") { _ in try await call() }
    }
    let command = try #require(tracer.finishedSpans.first { $0.operationName == "command" })
    let rpc = try #require(tracer.finishedSpans.first { $0.operationName == "deckhand.test.v1.Test/Call" })
    #expect(rpc.kind == .client)
    #expect(rpc.spanContext.parentSpanID == command.spanContext.spanID)
    let sent = seen.metadata.withLock { $0 }
    #expect(Array(sent[stringValues: InMemoryTracer.spanIDKey]) == [rpc.spanContext.spanID])
    #expect(Array(sent[stringValues: "authorization"]) == ["Bearer x"])
  }

  @Test("a server call runs in a span under the caller's context, current in the answer's producer too")
  func server() async throws {
    let tracer = InMemoryTracer()
    let seen = Seen()
    let interceptor = ServerTracingInterceptor()
    let metadata: Metadata = [InMemoryTracer.traceIDKey: "trace-1", InMemoryTracer.spanIDKey: "caller-span"]
    try await withTracer(tracer) {
      try await withServerContextRPCCancellationHandle { handle in
        let context = ServerContext(
          descriptor: Self.method, remotePeer: "peer", localPeer: "local", cancellation: handle)
        let response: StreamingServerResponse<Int> = try await interceptor.intercept(
          request: StreamingServerRequest(single: ServerRequest(metadata: metadata, message: 0)),
          context: context
        ) { _, _ in
          StreamingServerResponse(of: Int.self, metadata: [:]) { _ in
            seen.context.withLock { $0 = InstrumentationContext.current?.inMemorySpanContext }
            return [:]
          }
        }
        if case .success(let contents) = response.accepted {
          _ = try await contents.producer(RPCWriter(wrapping: NoWriter()))
        }
      }
    }
    let span = try #require(tracer.finishedSpans.first)
    #expect(span.kind == .server)
    #expect(span.spanContext.traceID == "trace-1")
    #expect(span.spanContext.parentSpanID == "caller-span")
    #expect(seen.context.withLock { $0?.spanID } == span.spanContext.spanID)
  }
}

struct NoWriter: RPCWriterProtocol {
  func write(_ element: Int) async throws {}
  func write(contentsOf elements: some Sequence<Int>) async throws {}
}
