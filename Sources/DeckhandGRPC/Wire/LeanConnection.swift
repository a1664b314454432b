internal import NIOCore
internal import NIOHTTP2

/// What both lean connection handlers keep about their connection: its
/// context, the inbound windows (``InboundWindow``) and the spinner
/// (``LoopSpinner``). Used on the connection's event loop only.
struct LeanConnection {
  let window: InboundWindow
  private let spinBudget: Duration
  private(set) var context: ChannelHandlerContext?
  private(set) var spinner: LoopSpinner?
  private var opened = false

  init(windowSize: Int, spinBudget: Duration) {
    self.window = InboundWindow(target: windowSize)
    self.spinBudget = spinBudget
  }

  /// From `handlerAdded`.
  mutating func added(_ context: ChannelHandlerContext) {
    self.context = context
    spinner = LoopSpinner(eventLoop: context.eventLoop, budget: spinBudget)
    if context.channel.isActive { activated(context) }
  }

  /// From `channelActive`: opens the connection window.
  mutating func activated(_ context: ChannelHandlerContext) {
    guard !opened else { return }
    opened = true
    if let update = window.openingUpdate() { context.writeAndFlush(NIOAny(update), promise: nil) }
  }

  /// From `handlerRemoved`.
  mutating func removed() {
    context = nil
  }

  /// Sends the WINDOW_UPDATE that `event` calls for, if any.
  func windowUpdated(_ event: NIOHTTP2WindowUpdatedEvent, isOpen: (HTTP2StreamID) -> Bool) {
    if let context, let update = window.update(for: event, isOpen: isOpen) {
      context.writeAndFlush(NIOAny(update), promise: nil)
    }
  }
}
