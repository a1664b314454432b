import DeckhandClient
import DeckhandCore
import DeckhandProtocol
import DeckhandTestSupport
import GRPCCore
import GRPCInProcessTransport
import GRPCProtobuf
import Synchronization
import Testing

@Suite("HeartbeatStream: heartbeats on one stream, calls for an older server")
struct HeartbeatStreamTests {
  /// A dispatcher that serves `Heartbeat` calls and, if `streams`, the
  /// `Heartbeats` stream (answering `periodMs`, or nothing when silent);
  /// without it the stream is UNIMPLEMENTED, as on a server older than it.
  final class FakeDispatcher: RegistrableRPCService, Sendable {
    let streams: Bool
    let silent: Bool
    let calls = Mutex(0)
    let streamed = Mutex(0)

    init(streams: Bool, silent: Bool = false) {
      self.streams = streams
      self.silent = silent
    }

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
      typealias Request = Deckhand_Dispatcher_V1_HeartbeatRequest
      typealias Response = Deckhand_Dispatcher_V1_HeartbeatResponse
      var answer = Response()
      answer.periodMs = 20
      let period = answer
      router.registerHandler(
        forMethod: Deckhand_Dispatcher_V1_Dispatcher.Method.Heartbeat.descriptor,
        deserializer: ProtobufDeserializer<Request>(), serializer: ProtobufSerializer<Response>()
      ) { request, _ in
        _ = try await ServerRequest(stream: request)
        self.calls.withLock { $0 += 1 }
        return StreamingServerResponse(single: ServerResponse(message: period))
      }
      guard streams else { return }
      router.registerHandler(
        forMethod: Deckhand_Dispatcher_V1_Dispatcher.Method.Heartbeats.descriptor,
        deserializer: ProtobufDeserializer<Request>(), serializer: ProtobufSerializer<Response>()
      ) { request, _ in
        StreamingServerResponse { writer in
          for try await _ in request.messages {
            self.streamed.withLock { $0 += 1 }
            if !self.silent { try await writer.write(period) }
          }
          return [:]
        }
      }
    }
  }

  /// Runs HeartbeatStream against `service` until `until` holds for the
  /// answers so far or it ends; the answers it counted and its error.
  static func run(
    _ service: FakeDispatcher, timeout: Duration = .seconds(5), until: @escaping @Sendable (Int) -> Bool
  ) async throws -> (answered: Int, error: (any Error)?) {
    let transport = InProcessTransport()
    return try await withGRPCServer(transport: transport.server, services: [service]) { _ in
      try await withGRPCClient(transport: transport.client) { client in
        let dispatcher = Deckhand_Dispatcher_V1_Dispatcher.Client(wrapping: client)
        let answered = Mutex(0)
        let beats = Task {
          try await HeartbeatStream.run(
            dispatcher, session: "s1", metadata: [:], firstDelay: .milliseconds(10), timeout: timeout
          ) { _ in answered.withLock { $0 += 1 } }
        }
        let finished = Mutex(false)
        let ended = Task { () -> (any Error)? in
          defer { finished.withLock { $0 = true } }
          do {
            try await beats.value
            return nil
          } catch {
            return error
          }
        }
        _ = await eventually(timeout: .seconds(10)) { until(answered.withLock { $0 }) || finished.withLock { $0 } }
        beats.cancel()
        return (answered.withLock { $0 }, await ended.value)
      }
    }
  }

  @Test("heartbeats go on one stream, each answered with the next period")
  func stream() async throws {
    let service = FakeDispatcher(streams: true)
    let (answered, _) = try await Self.run(service) { $0 >= 5 }
    #expect(answered >= 5)
    #expect(service.streamed.withLock { $0 } >= 5)
    #expect(service.calls.withLock { $0 } == 0)
  }

  @Test("a server without the stream (UNIMPLEMENTED) gets one Heartbeat call per heartbeat")
  func olderServer() async throws {
    let service = FakeDispatcher(streams: false)
    let (answered, _) = try await Self.run(service) { $0 >= 5 }
    #expect(answered >= 5)
    #expect(service.calls.withLock { $0 } >= 5)
  }

  @Test("an answer later than the timeout ends the heartbeats with an error that says so")
  func lateAnswer() async throws {
    let service = FakeDispatcher(streams: true, silent: true)
    let (answered, error) = try await Self.run(service, timeout: .milliseconds(300)) { _ in false }
    #expect(answered == 0)
    #expect(service.streamed.withLock { $0 } == 1)
    let message = (error as? DeckhandError)?.message ?? "\(String(describing: error))"
    #expect(message.contains("did not answer a heartbeat"))
  }
}
