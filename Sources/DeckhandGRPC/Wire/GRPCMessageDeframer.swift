package import NIOCore

/// Splits a gRPC stream's DATA into messages: each is a 1-byte compressed
/// flag, a 4-byte big-endian length and the bytes.
package struct GRPCMessageDeframer {
  private var buffer: ByteBuffer?
  package let maxMessageSize: Int

  package init(maxMessageSize: Int) {
    self.maxMessageSize = maxMessageSize
  }

  /// Adds received bytes.
  package mutating func append(_ bytes: ByteBuffer) {
    if buffer == nil {
      buffer = bytes
    } else {
      var incoming = bytes
      buffer!.writeBuffer(&incoming)
    }
  }

  /// The next whole message, nil if more bytes are needed.
  /// - Throws: ``GRPCCallError`` for a compressed message (none was asked
  ///   for) or one over the size limit.
  package mutating func next() throws(GRPCCallError) -> ByteBuffer? {
    guard var current = buffer, current.readableBytes >= 5 else { return nil }
    let start = current.readerIndex
    let flag = current.getInteger(at: start, as: UInt8.self)!
    let length = Int(current.getInteger(at: start + 1, as: UInt32.self)!)
    if flag != 0 {
      throw GRPCCallError(.internal, "received a compressed message, but no compression was negotiated")
    }
    if length > maxMessageSize {
      throw GRPCCallError(
        .resourceExhausted, "message of \(length) bytes is over the limit of \(maxMessageSize) bytes")
    }
    guard current.readableBytes >= 5 + length else { return nil }
    current.moveReaderIndex(forwardBy: 5)
    let message = current.readSlice(length: length)!
    buffer = current.readableBytes == 0 ? nil : current
    return message
  }

  /// Whether bytes of an unfinished message are left.
  package var hasPartialMessage: Bool { (buffer?.readableBytes ?? 0) > 0 }
}
