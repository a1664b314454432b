internal import NIOCore
internal import NIOHPACK
internal import NIOHTTP2

/// Every stream of one server connection, as frames on the connection's own
/// pipeline, after `NIOHTTP2Handler` (no child channel per stream): reads
/// each call's headers and request message, calls the router's handler,
/// and writes headers, the response and trailers (or a trailers-only
/// response for errors). Keeps the inbound windows open
/// (``InboundWindow``). Runs on the connection's event loop only.
final class ServerConnectionHandler: ChannelInboundHandler {
  typealias InboundIn = HTTP2Frame
  typealias OutboundOut = HTTP2Frame

  private struct Stream {
    var handler: LeanGRPCRouter.UnaryHandler?
    var heldOpen = false
    var deframer: GRPCMessageDeframer
    var request: ByteBuffer?
    /// The client has ended its side.
    var ended = false
    /// From `grpc-timeout`, if sent.
    var deadline: NIODeadline?
    var timeout: Duration = .zero
    /// The router's ``LeanGRPCRouter/passedHeaders`` this call carried.
    var passed: [(String, String)] = []
  }

  /// The headers that open every answer (and a trailers-only one).
  private static let responseHeaders: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]

  private let router: LeanGRPCRouter
  private let maxReceiveMessageSize: Int
  private var connection: LeanConnection
  private var context: ChannelHandlerContext? { connection.context }
  /// Open streams that have not been answered yet.
  private var streams: [HTTP2StreamID: Stream] = [:]
  private var deadlines = DeadlineTimer()
  /// Between a read and its `channelReadComplete`: answers written then
  /// (most are: handlers that do not suspend answer inside the read) are
  /// flushed once, at the end of the read, so that 16 requests that came in
  /// one read leave in one `writev` and reach the client in one read.
  private var reading = false
  private var flushPending = false
  /// Calls that the read in progress opened, and whether the last read
  /// opened exactly one: a caller that waits for each answer before it
  /// calls again, whose next call is worth staying awake for. A caller
  /// with calls in parallel keeps the loop busy anyway, and spinning then
  /// only takes a core its own side needs.
  private var openedThisRead = 0
  /// Reads left before the caller counts as sequential again: set when a
  /// read opens more than one call (calls in parallel), counted down by
  /// each read that opens one.
  private var parallelReads = LeanConnection.parallelMemory
  private var sequentialCaller: Bool { parallelReads == 0 }

  init(router: LeanGRPCRouter, maxReceiveMessageSize: Int, windowSize: Int, spin: LoopSpinner.Policy) {
    self.router = router
    self.maxReceiveMessageSize = maxReceiveMessageSize
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
    dropAll()
    connection.removed()
  }

  func channelInactive(context: ChannelHandlerContext) {
    dropAll()
    context.fireChannelInactive()
  }

  /// Forgets every stream: their answers, when they come, go nowhere.
  private func dropAll() {
    deadlines.cancel()
    streams = [:]
  }

  // MARK: Inbound

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    reading = true
    let frame = unwrapInboundIn(data)
    let id = frame.streamID
    switch frame.payload {
    case .headers(let headers):
      if let stream = streams[id] {
        // Trailers from the client: a unary client sends none; they end
        // its side.
        if headers.endStream, !stream.ended { requestEnded(id, stream) }
        return
      }
      guard let stream = receivedHeaders(context, id, headers.headers) else { return }
      if headers.endStream { requestEnded(id, stream) } else { streams[id] = stream }
    case .data(let payload):
      guard var stream = streams[id], !stream.ended else { return }
      if case .byteBuffer(let bytes) = payload.data {
        stream.deframer.append(bytes)
        do {
          while let message = try stream.deframer.next() {
            if stream.heldOpen { continue }
            if stream.request != nil {
              respondError(id, GRPCCallError(.internal, "a unary call got more than one request message"))
              return
            }
            stream.request = message
          }
        } catch {
          respondError(id, error)
          return
        }
      }
      if payload.endStream { requestEnded(id, stream) } else { streams[id] = stream }
    case .rstStream:
      // The client gave up (cancelled, deadline): the answer goes nowhere.
      streams.removeValue(forKey: id)
    default:
      break
    }
  }

  /// A new stream's request headers: the stream to keep, or nil if it was
  /// answered at once (a bad request, an unknown method).
  private func receivedHeaders(_ context: ChannelHandlerContext, _ id: HTTP2StreamID, _ headers: HPACKHeaders)
    -> Stream?
  {
    guard headers.first(name: ":method") == "POST" else {
      respondHTTP(id, status: "405")
      return nil
    }
    guard let contentType = headers.first(name: "content-type"), contentType.hasPrefix("application/grpc") else {
      respondHTTP(id, status: "415")
      return nil
    }
    if let encoding = headers.first(name: "grpc-encoding"), encoding != "identity" {
      writeTrailers(id, .unimplemented, "compression \(encoding) is not supported", trailersOnly: true)
      return nil
    }
    connection.spinner?.arrived()
    openedThisRead += 1
    let path = headers.first(name: ":path") ?? ""
    var stream = Stream(deframer: GRPCMessageDeframer(maxMessageSize: maxReceiveMessageSize))
    if router.heldOpen.contains(path) {
      stream.heldOpen = true
      context.write(
        wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: Self.responseHeaders)))),
        promise: nil)
      flush()
      return stream
    }
    guard let handler = router.unary[path] else {
      writeTrailers(id, .unimplemented, "method \(path) is not implemented", trailersOnly: true)
      return nil
    }
    stream.handler = handler
    if !router.passedHeaders.isEmpty {
      for (name, value, _) in headers where router.passedHeaders.contains(name) { stream.passed.append((name, value)) }
    }
    if let timeout = headers.first(name: "grpc-timeout").flatMap(GRPCTimeout.parse) {
      let deadline = NIODeadline.now() + TimeAmount(timeout)
      stream.deadline = deadline
      stream.timeout = timeout
      let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
      deadlines.arm(deadline, on: context.eventLoop) { loopBound.value.expireStreams() }
    }
    return stream
  }

  /// Answers the calls past their deadline; sets the timer for the rest.
  private func expireStreams() {
    let eventLoop = context?.eventLoop
    let loopBound = eventLoop.map { NIOLoopBound(self, eventLoop: $0) }
    let expired = deadlines.expire(streams.lazy.map { ($0.key, $0.value.deadline) }, on: eventLoop) {
      loopBound?.value.expireStreams()
    }
    for id in expired {
      let timeout = streams[id]?.timeout ?? .zero
      respondError(id, GRPCCallError(.deadlineExceeded, "deadline of \(timeout) exceeded"))
    }
  }

  /// The client ended its side: run the handler (or, for a held-open
  /// stream, end ours with OK).
  private func requestEnded(_ id: HTTP2StreamID, _ stream: Stream) {
    if stream.heldOpen {
      streams[id] = nil
      writeTrailers(id, .ok, nil, trailersOnly: false)
      return
    }
    var stream = stream
    stream.ended = true
    let request = stream.request
    stream.request = nil
    // Stored before anything answers: respondError and the answer look here.
    streams[id] = stream
    guard let handler = stream.handler, let context else { return }
    if stream.deframer.hasPartialMessage {
      respondError(id, GRPCCallError(.internal, "the request ended inside a message"))
      return
    }
    guard let request else {
      respondError(id, GRPCCallError(.internal, "a unary call got no request message"))
      return
    }
    let promise = context.eventLoop.makePromise(of: ByteBuffer.self)
    let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
    promise.futureResult.whenComplete { result in
      let handler = loopBound.value
      switch result {
      case .success(let response): handler.respond(id, response)
      case .failure(let error as GRPCCallError): handler.respondError(id, error)
      case .failure(let error): handler.respondError(id, GRPCCallError(.unknown, "\(error)"))
      }
    }
    if stream.passed.isEmpty {
      handler(request, promise)
    } else {
      CallHeaders.$current.withValue(stream.passed) { handler(request, promise) }
    }
  }

  func channelReadComplete(context: ChannelHandlerContext) {
    reading = false
    if openedThisRead > 1 {
      parallelReads = LeanConnection.parallelMemory
    } else if openedThisRead == 1 && parallelReads > 0 {
      parallelReads -= 1
    }
    openedThisRead = 0
    if flushPending {
      flushPending = false
      context.flush()
      // Answered within the read: the caller's next call is what comes next.
      if streams.isEmpty && sequentialCaller { connection.spinner?.keepAwake() }
    }
    context.fireChannelReadComplete()
  }

  /// Flushes what was written: now, or at the end of the read in progress.
  private func flush() {
    if reading {
      flushPending = true
    } else {
      context?.flush()
    }
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    switch HTTP2Event.of(event) {
    case .windowUpdated(let update):
      connection.windowUpdated(update) { streams[$0].map { !$0.ended } ?? false }
    case .streamClosed(let closed):
      streams.removeValue(forKey: closed.streamID)
    case nil:
      break
    }
    context.fireUserInboundEventTriggered(event)
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    if let error = error as? NIOHTTP2Errors.StreamError {
      // NIOHTTP2 has reset that stream.
      streams.removeValue(forKey: error.streamID)
      return
    }
    context.close(promise: nil)
  }

  // MARK: Outbound

  private func respond(_ id: HTTP2StreamID, _ response: ByteBuffer) {
    guard let context, streams.removeValue(forKey: id) != nil else { return }
    context.write(
      wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: Self.responseHeaders)))),
      promise: nil)
    let framed = ByteBuffer.framed(response, allocator: context.channel.allocator)
    context.write(
      wrapOutboundOut(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(framed))))), promise: nil)
    writeTrailers(id, .ok, nil, trailersOnly: false)
    // Answered after the read (the handler waited): a sequential caller
    // calls again soon, and finds this loop awake.
    if !reading && streams.isEmpty && sequentialCaller { connection.spinner?.keepAwake() }
  }

  private func respondError(_ id: HTTP2StreamID, _ error: GRPCCallError) {
    guard let stream = streams.removeValue(forKey: id) else { return }
    writeTrailers(id, error.code, error.message, trailersOnly: true)
    if !stream.ended {
      // The client may still be sending: tell it to stop (RFC 9113 8.1).
      context?.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .rstStream(.noError))), promise: nil)
      flush()
    }
  }

  private func writeTrailers(_ id: HTTP2StreamID, _ code: GRPCStatusCode, _ message: String?, trailersOnly: Bool) {
    guard let context else { return }
    var trailers: HPACKHeaders = trailersOnly ? Self.responseHeaders : [:]
    trailers.add(name: "grpc-status", value: String(code.rawValue))
    if let message, !message.isEmpty { trailers.add(name: "grpc-message", value: GRPCMessageEncoding.encode(message)) }
    context.write(
      wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: trailers, endStream: true)))),
      promise: nil)
    flush()
  }

  private func respondHTTP(_ id: HTTP2StreamID, status: String) {
    guard let context else { return }
    let headers: HPACKHeaders = [":status": status]
    context.write(
      wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers, endStream: true)))),
      promise: nil)
    flush()
  }
}
