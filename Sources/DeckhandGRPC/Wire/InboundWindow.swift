internal import NIOCore
internal import NIOHTTP2

/// Inbound flow control for the lean handlers, which read frames on the
/// connection itself (no stream channels, which would do this for them):
/// opens the connection window to ``target`` at once, and tops a window up
/// to ``target`` whenever it has fallen to half of it.
struct InboundWindow {
  /// The window each side keeps open, for the connection and each stream.
  let target: Int

  /// The first frame of a connection: RFC 9113 starts the connection window
  /// at 65,535 bytes whatever SETTINGS say; without this a 64 KiB message
  /// would wait for a WINDOW_UPDATE round trip.
  func openingUpdate() -> HTTP2Frame? {
    let initial = 65_535
    guard target > initial else { return nil }
    return HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: target - initial))
  }

  /// The WINDOW_UPDATE that `event` calls for, if any. `isOpen` says whether
  /// a stream can still receive (no update is sent for one that cannot).
  func update(for event: NIOHTTP2WindowUpdatedEvent, isOpen: (HTTP2StreamID) -> Bool) -> HTTP2Frame? {
    guard let window = event.inboundWindowSize, window <= target / 2 else { return nil }
    if event.streamID != .rootStream, !isOpen(event.streamID) { return nil }
    return HTTP2Frame(streamID: event.streamID, payload: .windowUpdate(windowSizeIncrement: target - window))
  }
}
