package import NIOCore
internal import SwiftProtobuf

extension ByteBufferAllocator {
  /// A buffer holding `message` with its gRPC length prefix.
  package func framedMessage(_ message: some Collection<UInt8>) -> ByteBuffer {
    var buffer = self.buffer(capacity: 5 + message.count)
    buffer.writeInteger(UInt8(0))
    buffer.writeInteger(UInt32(message.count))
    buffer.writeBytes(message)
    return buffer
  }
}

extension ByteBuffer {
  /// `message` with its gRPC length prefix: written into the 5 bytes before
  /// the reader index when the buffer kept them free (``GRPCMessageBytes``
  /// does), so the message is not copied; otherwise a framed copy.
  package static func framed(_ message: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
    guard message.readerIndex >= 5 else { return allocator.framedMessage(message.readableBytesView) }
    var framed = message
    let start = framed.readerIndex - 5
    framed.setInteger(UInt8(0), at: start)
    framed.setInteger(UInt32(message.readableBytes), at: start + 1)
    framed.moveReaderIndex(to: start)
    return framed
  }
}

/// Bytes that SwiftProtobuf serializes a message into: a `ByteBuffer` that
/// keeps 5 bytes free before the message for the gRPC length prefix, so a
/// message goes from the encoder to the socket without another copy.
///
/// ```swift
/// let bytes: GRPCMessageBytes = try request.serializedBytes()
/// let framed = ByteBuffer.framed(bytes.buffer, allocator: allocator)
/// ```
package struct GRPCMessageBytes: SwiftProtobufContiguousBytes {
  /// The message; `readerIndex` is 5, with the prefix's room before it.
  package private(set) var buffer: ByteBuffer

  package init(repeating: UInt8, count: Int) {
    buffer = ByteBufferAllocator().buffer(capacity: 5 + count)
    buffer.writeRepeatingByte(repeating, count: 5 + count)
    buffer.moveReaderIndex(forwardBy: 5)
  }

  package init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
    buffer = ByteBufferAllocator().buffer(capacity: 5 + sequence.underestimatedCount)
    buffer.writeRepeatingByte(0, count: 5)
    buffer.writeBytes(sequence)
    buffer.moveReaderIndex(forwardBy: 5)
  }

  package var count: Int { buffer.readableBytes }

  package func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try buffer.withUnsafeReadableBytes(body)
  }

  package mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
    try buffer.withUnsafeMutableReadableBytes(body)
  }
}
