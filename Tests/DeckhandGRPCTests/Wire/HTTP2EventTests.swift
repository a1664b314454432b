import NIOHTTP2
import Testing

@testable import DeckhandGRPC

@Suite("HTTP2Event: the NIOHTTP2 events the lean handlers act on")
struct HTTP2EventTests {
  @Test("window updates and closed streams are recognised, with their fields")
  func recognised() {
    let update = NIOHTTP2WindowUpdatedEvent(streamID: 3, inboundWindowSize: 10, outboundWindowSize: 20)
    guard case .windowUpdated(let seen) = HTTP2Event.of(update) else {
      Issue.record("window update not recognised")
      return
    }
    #expect(seen.streamID == 3 && seen.outboundWindowSize == 20)
    guard case .streamClosed(let closed) = HTTP2Event.of(StreamClosedEvent(streamID: 5, reason: .cancel)) else {
      Issue.record("closed stream not recognised")
      return
    }
    #expect(closed.streamID == 5 && closed.reason == .cancel)
  }

  @Test("any other event, or a value of another type, is nil")
  func others() {
    #expect(
      HTTP2Event.of(NIOHTTP2StreamCreatedEvent(streamID: 1, localInitialWindowSize: nil, remoteInitialWindowSize: nil))
        == nil)
    #expect(HTTP2Event.of(NIOHTTP2BulkStreamWindowChangeEvent(delta: 5)) == nil)
    #expect(HTTP2Event.of("windowUpdated") == nil)
    #expect(HTTP2Event.of(Optional(StreamClosedEvent(streamID: 1, reason: nil)) as Any) == nil)
  }
}
