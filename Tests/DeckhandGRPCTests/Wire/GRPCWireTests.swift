import DeckhandGRPC
import NIOCore
import Testing

@Suite("gRPC wire details")
struct GRPCWireTests {
  @Test(
    "grpc-timeout is encoded in at most 8 digits and parsed back",
    arguments: [
      (Duration.seconds(5), "5000000u"), (.milliseconds(1), "1000000n"), (.seconds(3600 * 24 * 365), "31536000S"),
      (.seconds(315_360_000), "5256000M"),
      (.nanoseconds(1), "1n"), (.seconds(200), "200000m"),
    ])
  func timeout(duration: Duration, text: String) {
    #expect(GRPCTimeout.encode(duration) == text)
    #expect(GRPCTimeout.parse(text) == duration)
  }

  @Test("malformed grpc-timeout values are refused", arguments: ["", "5", "S", "123456789S", "-1S", "10x"])
  func badTimeout(text: String) {
    #expect(GRPCTimeout.parse(text) == nil)
  }

  @Test("grpc-message is percent-encoded and decoded")
  func message() {
    let text = "bad: 100% \u{E9}t\u{E9}\nnext"
    let encoded = GRPCMessageEncoding.encode(text)
    #expect(encoded == "bad: 100%25 %C3%A9t%C3%A9%0Anext")
    #expect(GRPCMessageEncoding.decode(encoded) == text)
  }

  @Test("messages split across reads are reassembled; several in one read are split")
  func deframer() throws {
    let allocator = ByteBufferAllocator()
    var both = allocator.framedMessage([1, 2, 3])
    var second = allocator.framedMessage([UInt8](repeating: 9, count: 300))
    both.writeBuffer(&second)
    var deframer = GRPCMessageDeframer(maxMessageSize: 1000)
    deframer.append(both.getSlice(at: 0, length: 4)!)
    #expect(try deframer.next() == nil)
    deframer.append(both.getSlice(at: 4, length: both.readableBytes - 4)!)
    #expect(try deframer.next().map { Array($0.readableBytesView) } == [1, 2, 3])
    #expect(try deframer.next()?.readableBytes == 300)
    #expect(try deframer.next() == nil)
    #expect(!deframer.hasPartialMessage)
  }

  @Test("a message over the limit, or compressed, is refused")
  func limits() {
    var deframer = GRPCMessageDeframer(maxMessageSize: 10)
    deframer.append(ByteBufferAllocator().framedMessage([UInt8](repeating: 0, count: 11)))
    #expect(throws: GRPCCallError.self) { try deframer.next() }
    var compressed = ByteBuffer(bytes: [1, 0, 0, 0, 1, 7])
    var other = GRPCMessageDeframer(maxMessageSize: 10)
    other.append(compressed)
    compressed.clear()
    #expect(throws: GRPCCallError.self) { try other.next() }
  }
}
