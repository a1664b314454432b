internal import NIOCore
internal import NIOHPACK
internal import NIOHTTP2

/// The first handler of every call's HTTP/2 stream: reads each request
/// message's length (the gRPC 5-byte prefix) as it arrives and ends the
/// call with RESOURCE_EXHAUSTED, naming the limit, as soon as one is over
/// its method's limit, before any of it is buffered.
///
/// grpc-swift's own payload limit is one figure for every method and, when
/// crossed, resets the stream, which a client sees as UNAVAILABLE and
/// retries. Here each method has its own limit (``limit(forPath:)``) and
/// the caller is told why.
final class MessageSizeLimit: ChannelDuplexHandler, RemovableChannelHandler {
  typealias InboundIn = HTTP2Frame.FramePayload
  typealias InboundOut = HTTP2Frame.FramePayload
  typealias OutboundIn = HTTP2Frame.FramePayload
  typealias OutboundOut = HTTP2Frame.FramePayload

  /// Requests of most methods are small (a heartbeat, a job, 64 KiB of
  /// output); an artifact arrives in 1 MiB chunks.
  static let defaultLimit = 1 << 20
  static let limits: [String: Int] = [
    "/deckhand.control.v1.Control/PushArtifact": 2 << 20,
    "/deckhand.control.v1.Control/RestoreSnapshot": 2 << 20,
  ]

  static func limit(forPath path: String) -> Int { limits[path] ?? defaultLimit }

  /// Puts a limit first on a call's stream channel.
  @Sendable static func install(on stream: any Channel) -> EventLoopFuture<Void> {
    stream.eventLoop.makeCompletedFuture {
      try stream.pipeline.syncOperations.addHandler(MessageSizeLimit(), position: .first)
    }
  }

  private var limit = MessageSizeLimit.defaultLimit
  private var path = ""
  /// Bytes of the current message's prefix seen so far.
  private var prefix: [UInt8] = []
  /// Bytes of the current message's body still to come.
  private var remaining = 0
  private var responseStarted = false
  private var refused = false

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    guard !refused else { return }
    let payload = unwrapInboundIn(data)
    switch payload {
    case .headers(let headers) where path.isEmpty:
      path = headers.headers.first(name: ":path") ?? ""
      limit = Self.limit(forPath: path)
    case .data(let frame):
      if case .byteBuffer(let buffer) = frame.data, let length = oversized(buffer) {
        refuse(context: context, length: length)
        return
      }
    default:
      break
    }
    context.fireChannelRead(data)
  }

  func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
    if case .headers = unwrapOutboundIn(data) { responseStarted = true }
    context.write(data, promise: promise)
  }

  /// The declared length of the first message in `buffer` over the limit.
  private func oversized(_ buffer: ByteBuffer) -> Int? {
    var view = buffer.readableBytesView[...]
    while !view.isEmpty {
      if remaining > 0 {
        let skipped = min(remaining, view.count)
        view = view.dropFirst(skipped)
        remaining -= skipped
        continue
      }
      prefix.append(view.first!)
      view = view.dropFirst()
      if prefix.count == 5 {
        let length = prefix[1...4].reduce(0) { $0 << 8 | Int($1) }
        prefix.removeAll(keepingCapacity: true)
        if length > limit { return length }
        remaining = length
      }
    }
    return nil
  }

  private func refuse(context: ChannelHandlerContext, length: Int) {
    refused = true
    var headers: HPACKHeaders =
      responseStarted ? [:] : [":status": "200", "content-type": "application/grpc"]
    headers.add(name: "grpc-status", value: "8")
    headers.add(
      name: "grpc-message",
      value: "a message of \(length) bytes is over the server's limit of \(limit) bytes for \(path)")
    context.writeAndFlush(
      wrapOutboundOut(.headers(.init(headers: headers, endStream: true))), promise: nil)
    context.close(promise: nil)
  }
}
