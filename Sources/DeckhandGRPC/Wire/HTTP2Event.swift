internal import NIOHTTP2

/// The NIOHTTP2 user events both lean handlers act on.
///
/// A cast from `Any` that fails walks the runtime's cast paths, and NIOHTTP2
/// fires three or four events per call: the event's type identity decides
/// before any cast (casts in the handlers' `userInboundEventTriggered`: 0.9 %
/// of both ends' CPU under 16 callers with two `as?` each, 0.4 % with this;
/// `perf record` of `deckhand plugin bench`).
enum HTTP2Event {
  /// The peer opened a flow-control window (a stream's or the connection's).
  case windowUpdated(NIOHTTP2WindowUpdatedEvent)
  /// A stream closed.
  case streamClosed(StreamClosedEvent)

  private static let windowUpdatedType = ObjectIdentifier(NIOHTTP2WindowUpdatedEvent.self)
  private static let streamClosedType = ObjectIdentifier(StreamClosedEvent.self)

  /// The event, if it is one of these; nil for any other.
  static func of(_ event: Any) -> HTTP2Event? {
    let type = ObjectIdentifier(Swift.type(of: event))
    if type == windowUpdatedType, let event = event as? NIOHTTP2WindowUpdatedEvent { return .windowUpdated(event) }
    if type == streamClosedType, let event = event as? StreamClosedEvent { return .streamClosed(event) }
    return nil
  }
}
