internal import NIOCore
internal import NIOHPACK
internal import NIOHTTP2

/// Every unary call of one client connection, as frames on the connection's
/// own pipeline, after `NIOHTTP2Handler`: a call is a stream id and an
/// entry in a dictionary, not a child channel with a pipeline of its own
/// (which cost about a third of the CPU of a call). Runs on the
/// connection's event loop only.
///
/// Per call it writes HEADERS and one DATA frame with END_STREAM, then
/// reads the response headers, the message and the trailers (or a
/// trailers-only response) and completes the call's promise. It keeps the
/// inbound windows open (``InboundWindow``), fails calls that the server
/// refuses after a GOAWAY, and fails every call when the connection ends.
final class ClientConnectionHandler: ChannelInboundHandler {
  typealias InboundIn = HTTP2Frame
  typealias OutboundOut = HTTP2Frame

  private struct Call {
    let promise: EventLoopPromise<ByteBuffer>
    var deframer: GRPCMessageDeframer
    var response: ByteBuffer?
    var sawHeaders = false
    let deadline: NIODeadline
    let timeout: Duration
  }

  private var connection: LeanConnection
  private var context: ChannelHandlerContext? { connection.context }
  private var calls: [HTTP2StreamID: Call] = [:]
  private var deadlines = DeadlineTimer()
  private var nextStreamID: Int32 = 1
  /// Why new calls fail at once: the connection ended, or the server sent
  /// GOAWAY.
  private var refusal: GRPCCallError?
  /// Calls left before this client counts as sequential again (see
  /// ``LeanConnection/parallelMemory``): only then does it spin for an
  /// answer.
  private var parallelCalls = 0

  init(windowSize: Int, spin: LoopSpinner.Policy) {
    self.connection = LeanConnection(windowSize: windowSize, spin: spin)
  }

  func handlerAdded(context: ChannelHandlerContext) {
    // Written after the mutation: see LeanConnection.activated().
    if let update = connection.added(context) { context.writeAndFlush(NIOAny(update), promise: nil) }
  }

  func channelActive(context: ChannelHandlerContext) {
    if let update = connection.activated() { context.writeAndFlush(NIOAny(update), promise: nil) }
    context.fireChannelActive()
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    failAll(GRPCCallError(.unavailable, "the connection's handler was removed"))
    connection.removed()
  }

  // MARK: Calls

  /// Starts a call; its promise completes with the response message or a
  /// ``GRPCCallError``. Returns the call's stream id (for ``cancel(_:)``).
  func start(
    headers: HPACKHeaders, message: ByteBuffer, timeout: Duration, maxReceiveMessageSize: Int,
    promise: EventLoopPromise<ByteBuffer>
  ) -> HTTP2StreamID? {
    guard let context, refusal == nil else {
      promise.fail(refusal ?? GRPCCallError(.unavailable, "the connection is closed"))
      return nil
    }
    guard nextStreamID < Int32.max - 1 else {
      refusal = GRPCCallError(.unavailable, "the connection has used all its stream ids")
      promise.fail(refusal!)
      return nil
    }
    let id = HTTP2StreamID(nextStreamID)
    nextStreamID += 2
    let call = Call(
      promise: promise, deframer: GRPCMessageDeframer(maxMessageSize: maxReceiveMessageSize),
      deadline: .now() + TimeAmount(timeout), timeout: timeout)
    calls[id] = call
    let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
    deadlines.arm(call.deadline, on: context.eventLoop) { loopBound.value.expireCalls() }
    // A write that fails fails the connection (errorCaught, then
    // channelInactive), which fails every call: no promise per write.
    context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers)))), promise: nil)
    context.write(
      wrapOutboundOut(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(message), endStream: true)))),
      promise: nil)
    if calls.count > 1 {
      parallelCalls = LeanConnection.parallelMemory
    } else if parallelCalls > 0 {
      parallelCalls -= 1
    }
    // Out at once, also with other calls in flight: holding requests back
    // to send several in one write put the two ends in lockstep (each
    // waited while the other worked its batch): 16 callers made 23,000
    // calls/s that way and 42,000 flushing each call.
    context.flush()
    // For a caller that makes one call at a time, the loop is kept awake
    // for the answer.
    if calls.count == 1 && parallelCalls == 0 { connection.spinner?.keepAwake() }
    return id
  }

  /// Fails the calls past their deadline; sets the timer for the rest.
  private func expireCalls() {
    let eventLoop = context?.eventLoop
    let loopBound = eventLoop.map { NIOLoopBound(self, eventLoop: $0) }
    let expired = deadlines.expire(calls.lazy.map { ($0.key, $0.value.deadline) }, on: eventLoop) {
      loopBound?.value.expireCalls()
    }
    for id in expired {
      let timeout = calls[id].map { "\($0.timeout)" } ?? "its deadline"
      finish(id, .failure(GRPCCallError(.deadlineExceeded, "no response within \(timeout)")), reset: true)
    }
  }

  /// Ends call `id` as cancelled, resetting its stream.
  func cancel(_ id: HTTP2StreamID) {
    finish(id, .failure(GRPCCallError(.cancelled, "the call was cancelled")), reset: true)
  }

  private func finish(_ id: HTTP2StreamID, _ result: Result<ByteBuffer, GRPCCallError>, reset: Bool) {
    guard let call = calls.removeValue(forKey: id) else { return }
    call.promise.completeWith(result.mapError { $0 as any Error })
    if reset, let context {
      context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .rstStream(.cancel))), promise: nil)
    }
  }

  private func failAll(_ error: GRPCCallError) {
    if refusal == nil { refusal = error }
    let pending = calls
    calls = [:]
    deadlines.cancel()
    for (_, call) in pending {
      call.promise.fail(error)
    }
  }

  // MARK: Inbound

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let frame = unwrapInboundIn(data)
    let id = frame.streamID
    switch frame.payload {
    case .headers(let headers):
      guard var call = calls[id] else { return }
      if call.sawHeaders {
        trailers(id, call, headers.headers)
        return
      }
      // The answer the spin waited for (not a WINDOW_UPDATE or a PING).
      connection.spinner?.arrived()
      call.sawHeaders = true
      let status = headers.headers.first(name: ":status")
      guard status == "200" else {
        let code: GRPCStatusCode = status.map(Self.codeForHTTPStatus) ?? .internal
        finish(id, .failure(GRPCCallError(code, "HTTP status \(status ?? "missing") from the server")), reset: true)
        return
      }
      if let contentType = headers.headers.first(name: "content-type"), !contentType.hasPrefix("application/grpc") {
        finish(id, .failure(GRPCCallError(.internal, "content-type \(contentType) is not gRPC")), reset: true)
        return
      }
      if headers.endStream {
        trailers(id, call, headers.headers)  // trailers-only
      } else {
        calls[id] = call
      }
    case .data(let payload):
      guard var call = calls[id] else { return }
      if case .byteBuffer(let bytes) = payload.data {
        call.deframer.append(bytes)
        do {
          while let next = try call.deframer.next() {
            if call.response != nil {
              finish(id, .failure(GRPCCallError(.internal, "a unary call got more than one message")), reset: true)
              return
            }
            call.response = next
          }
        } catch {
          finish(id, .failure(error), reset: true)
          return
        }
      }
      if payload.endStream {
        finish(id, .failure(GRPCCallError(.internal, "the server ended the stream without trailers")), reset: false)
      } else {
        calls[id] = call
      }
    case .rstStream(let code):
      finish(id, .failure(GRPCCallError(.unavailable, "the server reset the stream (\(code))")), reset: false)
    case .goAway(let lastStreamID, let code, _):
      // Calls above lastStreamID were never processed; NIOHTTP2 closes
      // those streams (StreamClosedEvent). No new call may start.
      if refusal == nil {
        refusal = GRPCCallError(.unavailable, "the server is going away (GOAWAY \(code), last stream \(lastStreamID))")
      }
    default:
      break
    }
  }

  private func trailers(_ id: HTTP2StreamID, _ call: Call, _ headers: HPACKHeaders) {
    guard let statusText = headers.first(name: "grpc-status"), let raw = Int(statusText) else {
      finish(id, .failure(GRPCCallError(.unknown, "trailers without grpc-status")), reset: false)
      return
    }
    let code = GRPCStatusCode(rawValue: raw) ?? .unknown
    guard code == .ok else {
      let message = headers.first(name: "grpc-message").map(GRPCMessageEncoding.decode) ?? ""
      finish(id, .failure(GRPCCallError(code, message)), reset: false)
      return
    }
    guard let response = call.response else {
      finish(id, .failure(GRPCCallError(.internal, "status OK but no response message")), reset: false)
      return
    }
    finish(id, .success(response), reset: false)
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    switch HTTP2Event.of(event) {
    case .windowUpdated(let update):
      connection.windowUpdated(update) { calls[$0] != nil }
    case .streamClosed(let closed):
      // A normal call ended before its stream closed; one still here was
      // closed under it (reset, refused after GOAWAY).
      finish(
        closed.streamID,
        .failure(
          GRPCCallError(
            .unavailable, "the stream closed before the call ended (\(closed.reason.map { "\($0)" } ?? "no error"))")),
        reset: false)
    case nil:
      break
    }
    context.fireUserInboundEventTriggered(event)
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    if let error = error as? NIOHTTP2Errors.StreamError {
      finish(error.streamID, .failure(GRPCCallError(.internal, "\(error.baseError)")), reset: true)
      return
    }
    // A connection-level error (a protocol violation, a reset socket): every
    // call fails now, not at its deadline.
    failAll(GRPCCallError(.unavailable, "\(error)"))
    context.close(promise: nil)
  }

  func channelInactive(context: ChannelHandlerContext) {
    failAll(GRPCCallError(.unavailable, "the connection closed before the call ended"))
    context.fireChannelInactive()
  }

  static func codeForHTTPStatus(_ status: String) -> GRPCStatusCode {
    switch status {
    case "400": .internal
    case "401": .unauthenticated
    case "403": .permissionDenied
    case "404": .unimplemented
    case "429", "502", "503", "504": .unavailable
    default: .unknown
    }
  }
}
