internal import NIOCore
internal import NIOHPACK
internal import NIOHTTP2

/// One unary call on its own HTTP/2 stream: writes the request headers and
/// message, reads the response headers, message and trailers, and completes
/// the call's promise. Runs on the connection's event loop only.
final class UnaryClientStreamHandler: ChannelInboundHandler {
  typealias InboundIn = HTTP2Frame.FramePayload
  typealias OutboundOut = HTTP2Frame.FramePayload

  private let headers: HPACKHeaders
  private var message: ByteBuffer?
  private let timeout: Duration
  private let promise: EventLoopPromise<ByteBuffer>
  private var deframer: GRPCMessageDeframer
  private var response: ByteBuffer?
  private var sawHeaders = false
  private var done = false
  private var timer: Scheduled<Void>?

  init(
    headers: HPACKHeaders, message: ByteBuffer, timeout: Duration, maxReceiveMessageSize: Int,
    promise: EventLoopPromise<ByteBuffer>
  ) {
    self.headers = headers
    self.message = message
    self.timeout = timeout
    self.promise = promise
    self.deframer = GRPCMessageDeframer(maxMessageSize: maxReceiveMessageSize)
  }

  func handlerAdded(context: ChannelHandlerContext) {
    let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
    timer = context.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
      let (handler, context) = loopBound.value
      handler.finish(
        context, .failure(GRPCCallError(.deadlineExceeded, "no response within \(handler.timeout)")), reset: true)
    }
    if context.channel.isActive { sendRequest(context) }
  }

  func channelActive(context: ChannelHandlerContext) {
    sendRequest(context)
    context.fireChannelActive()
  }

  private func sendRequest(_ context: ChannelHandlerContext) {
    guard let message else { return }
    self.message = nil
    context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
    context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(message), endStream: true))), promise: nil)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    guard !done else { return }
    switch unwrapInboundIn(data) {
    case .headers(let frame):
      if !sawHeaders {
        sawHeaders = true
        let status = frame.headers.first(name: ":status")
        guard status == "200" else {
          let code: GRPCStatusCode = status.map(Self.codeForHTTPStatus) ?? .internal
          finish(
            context, .failure(GRPCCallError(code, "HTTP status \(status ?? "missing") from the server")), reset: true)
          return
        }
        if let contentType = frame.headers.first(name: "content-type"), !contentType.hasPrefix("application/grpc") {
          finish(context, .failure(GRPCCallError(.internal, "content-type \(contentType) is not gRPC")), reset: true)
          return
        }
        if frame.endStream { trailers(context, frame.headers) }  // trailers-only
      } else {
        trailers(context, frame.headers)
      }
    case .data(let frame):
      if case .byteBuffer(let bytes) = frame.data {
        deframer.append(bytes)
        do {
          while let next = try deframer.next() {
            if response != nil {
              finish(context, .failure(GRPCCallError(.internal, "a unary call got more than one message")), reset: true)
              return
            }
            response = next
          }
        } catch {
          finish(context, .failure(error), reset: true)
          return
        }
      }
      if frame.endStream {
        finish(
          context, .failure(GRPCCallError(.internal, "the server ended the stream without trailers")), reset: false)
      }
    case .rstStream(let frame):
      finish(context, .failure(GRPCCallError(.unavailable, "the server reset the stream (\(frame))")), reset: false)
    default:
      break
    }
  }

  private func trailers(_ context: ChannelHandlerContext, _ headers: HPACKHeaders) {
    guard let statusText = headers.first(name: "grpc-status"), let raw = Int(statusText) else {
      finish(context, .failure(GRPCCallError(.unknown, "trailers without grpc-status")), reset: false)
      return
    }
    let code = GRPCStatusCode(rawValue: raw) ?? .unknown
    guard code == .ok else {
      let message = headers.first(name: "grpc-message").map(GRPCMessageEncoding.decode) ?? ""
      finish(context, .failure(GRPCCallError(code, message)), reset: false)
      return
    }
    guard let response else {
      finish(context, .failure(GRPCCallError(.internal, "status OK but no response message")), reset: false)
      return
    }
    finish(context, .success(response), reset: false)
  }

  func channelInactive(context: ChannelHandlerContext) {
    finish(context, .failure(GRPCCallError(.unavailable, "the stream closed before the call ended")), reset: false)
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    finish(context, .failure(GRPCCallError(.unavailable, "\(error)")), reset: true)
  }

  func cancelFromOutside(_ channel: any Channel) {
    guard !done, let context = try? channel.pipeline.syncOperations.context(handlerType: Self.self) else { return }
    finish(context, .failure(GRPCCallError(.cancelled, "the call was cancelled")), reset: true)
  }

  private func finish(_ context: ChannelHandlerContext, _ result: Result<ByteBuffer, GRPCCallError>, reset: Bool) {
    guard !done else { return }
    done = true
    timer?.cancel()
    promise.completeWith(result.mapError { $0 as any Error })
    if reset {
      context.writeAndFlush(wrapOutboundOut(.rstStream(.cancel)), promise: nil)
      context.close(promise: nil)
    }
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
