internal import NIOCore
internal import NIOHTTP2

/// What both lean connection handlers keep about their connection: its
/// context, the inbound windows (``InboundWindow``) and the spinner
/// (``LoopSpinner``). Used on the connection's event loop only.
struct LeanConnection {
  let window: InboundWindow
  private let spin: LoopSpinner.Policy
  private(set) var context: ChannelHandlerContext?
  private(set) var spinner: LoopSpinner?
  private var opened = false

  /// How many reads (server) or calls (client) without calls in parallel
  /// make a caller sequential again, worth spinning for. Under 16 callers
  /// a read or a call with others in flight comes every few calls, so the
  /// loop never spins there: a spin turn costs a timer (`timerfd_settime`,
  /// a VM exit here) and took a core the other side needed.
  static let parallelMemory = 64

  init(windowSize: Int, spin: LoopSpinner.Policy) {
    self.window = InboundWindow(target: windowSize)
    self.spin = spin
  }

  /// From `handlerAdded`; returns the window update to send when the
  /// channel is already active (``activated()``).
  mutating func added(_ context: ChannelHandlerContext) -> HTTP2Frame? {
    self.context = context
    spinner = LoopSpinner(eventLoop: context.eventLoop, policy: spin)
    return context.channel.isActive ? activated() : nil
  }

  /// From `channelActive`: opens the connection window.
  ///
  /// Returns the WINDOW_UPDATE for the caller to write once this mutation
  /// has ended: a write can call back into the handler at once (NIOHTTP2
  /// fires a window event inbound), which reads this connection, and a
  /// write from inside the mutation was an exclusivity violation (a crash,
  /// seen with a client and server in one process).
  mutating func activated() -> HTTP2Frame? {
    guard !opened else { return nil }
    opened = true
    return window.openingUpdate()
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
