internal import NIOCore

/// Closes a client connection on a connection-level error (a protocol
/// violation, a reset socket), so that every call on it fails at once with
/// `unavailable` instead of waiting for its deadline.
final class ConnectionErrorHandler: ChannelInboundHandler {
  typealias InboundIn = Any

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    context.close(promise: nil)
  }
}
