internal import NIOCore
internal import NIOHPACK
internal import NIOHTTP2

/// Serves one HTTP/2 stream: reads the request headers and message, calls
/// the router's handler, writes headers, the response and trailers (or a
/// trailers-only response for errors). Runs on the connection's event loop.
final class UnaryServerStreamHandler: ChannelInboundHandler {
  typealias InboundIn = HTTP2Frame.FramePayload
  typealias OutboundOut = HTTP2Frame.FramePayload

  private let router: LeanGRPCRouter
  private var deframer: GRPCMessageDeframer
  private var path: String?
  private var request: ByteBuffer?
  private var heldOpen = false
  private var responded = false
  private var timer: Scheduled<Void>?

  init(router: LeanGRPCRouter, maxReceiveMessageSize: Int) {
    self.router = router
    self.deframer = GRPCMessageDeframer(maxMessageSize: maxReceiveMessageSize)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .headers(let frame):
      guard path == nil else {
        // Trailers from the client: a unary client sends none; ignore.
        if frame.endStream { requestEnded(context) }
        return
      }
      receivedHeaders(context, frame.headers)
      if frame.endStream { requestEnded(context) }
    case .data(let frame):
      guard !responded else { return }
      if case .byteBuffer(let bytes) = frame.data {
        deframer.append(bytes)
        do {
          while let message = try deframer.next() {
            if heldOpen { continue }
            if request != nil {
              respondError(context, GRPCCallError(.internal, "a unary call got more than one request message"))
              return
            }
            request = message
          }
        } catch {
          respondError(context, error)
          return
        }
      }
      if frame.endStream { requestEnded(context) }
    default:
      break
    }
  }

  private func receivedHeaders(_ context: ChannelHandlerContext, _ headers: HPACKHeaders) {
    let path = headers.first(name: ":path") ?? ""
    self.path = path
    guard headers.first(name: ":method") == "POST" else {
      respondHTTP(context, status: "405")
      return
    }
    guard let contentType = headers.first(name: "content-type"), contentType.hasPrefix("application/grpc") else {
      respondHTTP(context, status: "415")
      return
    }
    if let encoding = headers.first(name: "grpc-encoding"), encoding != "identity" {
      respondError(context, GRPCCallError(.unimplemented, "compression \(encoding) is not supported"))
      return
    }
    if router.heldOpen.contains(path) {
      heldOpen = true
      writeResponseHeaders(context)
      context.flush()
      return
    }
    guard router.unary[path] != nil else {
      respondError(context, GRPCCallError(.unimplemented, "method \(path) is not implemented"))
      return
    }
    if let timeout = headers.first(name: "grpc-timeout").flatMap(GRPCTimeout.parse) {
      let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
      timer = context.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
        let (handler, context) = loopBound.value
        handler.respondError(context, GRPCCallError(.deadlineExceeded, "deadline of \(timeout) exceeded"))
      }
    }
  }

  private func requestEnded(_ context: ChannelHandlerContext) {
    guard !responded else { return }
    if heldOpen {
      responded = true
      writeTrailers(context, code: .ok, message: nil, endOnly: false)
      return
    }
    guard let path, let handler = router.unary[path] else { return }
    if deframer.hasPartialMessage {
      respondError(context, GRPCCallError(.internal, "the request ended inside a message"))
      return
    }
    guard let request else {
      respondError(context, GRPCCallError(.internal, "a unary call got no request message"))
      return
    }
    self.request = nil
    let promise = context.eventLoop.makePromise(of: ByteBuffer.self)
    let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
    promise.futureResult.whenComplete { result in
      let (handler, context) = loopBound.value
      switch result {
      case .success(let response): handler.respond(context, response)
      case .failure(let error as GRPCCallError): handler.respondError(context, error)
      case .failure(let error): handler.respondError(context, GRPCCallError(.unknown, "\(error)"))
      }
    }
    handler(request, promise)
  }

  private func writeResponseHeaders(_ context: ChannelHandlerContext) {
    let headers: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
    context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
  }

  private func writeTrailers(_ context: ChannelHandlerContext, code: GRPCStatusCode, message: String?, endOnly: Bool) {
    var trailers: HPACKHeaders =
      endOnly ? [":status": "200", "content-type": "application/grpc"] : [:]
    trailers.add(name: "grpc-status", value: String(code.rawValue))
    if let message, !message.isEmpty { trailers.add(name: "grpc-message", value: GRPCMessageEncoding.encode(message)) }
    context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
  }

  private func respond(_ context: ChannelHandlerContext, _ response: ByteBuffer) {
    guard !responded else { return }
    responded = true
    timer?.cancel()
    writeResponseHeaders(context)
    let framed = context.channel.allocator.framedMessage(response.readableBytesView)
    context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(framed)))), promise: nil)
    writeTrailers(context, code: .ok, message: nil, endOnly: false)
  }

  fileprivate func respondError(_ context: ChannelHandlerContext, _ error: GRPCCallError) {
    guard !responded else { return }
    responded = true
    timer?.cancel()
    writeTrailers(context, code: error.code, message: error.message, endOnly: true)
  }

  private func respondHTTP(_ context: ChannelHandlerContext, status: String) {
    guard !responded else { return }
    responded = true
    let headers: HPACKHeaders = [":status": status]
    context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers, endStream: true))), promise: nil)
  }

  func channelInactive(context: ChannelHandlerContext) {
    responded = true
    timer?.cancel()
    context.fireChannelInactive()
  }
}
