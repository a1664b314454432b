import DeckhandPluginHost
import Foundation
import NIOCore
import NIOEmbedded
import Testing

@testable import DeckhandAgent

@Suite("Command connection handler")
struct CommandConnectionHandlerTests {
  @Test("an error while reading a request is answered 103")
  func readError() throws {
    let channel = EmbeddedChannel(handler: CommandConnectionHandler(registry: CommandRegistry(), timeout: .seconds(10)))
    try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/x")).wait()
    channel.pipeline.fireErrorCaught(IOError(errnoCode: ECONNRESET, reason: "read"))
    let written = try channel.readOutbound(as: ByteBuffer.self)
    #expect(written.map { String(buffer: $0) } == #"{"Status":103,"StatusMessage":"Connection error"}"#)
    _ = try? channel.finish()
  }
}
