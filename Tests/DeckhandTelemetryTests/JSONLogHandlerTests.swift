import DeckhandTelemetry
import Foundation
import Logging
import Synchronization
import Testing

@Suite("JSONLogHandler: one JSON object a line")
struct JSONLogHandlerTests {
  final class Lines: Sendable {
    let lines = Mutex<[String]>([])
  }

  @Test("fields, metadata and hostile text come out as valid JSON; levels below the logger's are dropped")
  func validJSON() throws {
    let captured = Lines()
    var logger = Logger(label: "deckhand.test") { label in
      JSONLogHandler(label: label, level: .info) { line in captured.lines.withLock { $0.append(line) } }
    }
    logger[metadataKey: "node"] = "web-1"
    logger.debug("not shown")
    logger.warning(
      "a \"quoted\"\nline\u{0}\u{1b}[31m with \\ and é", metadata: ["trace_id": "0af7651916cd43dd8448eb211c80319c"])
    let lines = captured.lines.withLock { $0 }
    try #require(lines.count == 1)
    #expect(lines[0].hasSuffix("}\n") && !lines[0].dropLast().contains("\n"))
    let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: String])
    #expect(object["level"] == "warning")
    #expect(object["logger"] == "deckhand.test")
    #expect(object["message"] == "a \"quoted\"\nline\u{0}\u{1b}[31m with \\ and é")
    #expect(object["node"] == "web-1")
    #expect(object["trace_id"] == "0af7651916cd43dd8448eb211c80319c")
    let time = try #require(object["time"])
    #expect(time.hasSuffix("Z") && time.contains("T") && time.contains("."), "\(time)")
  }

  @Test("a metadata provider's values (the current trace) are on every entry; the entry's own win")
  func provider() throws {
    let captured = Lines()
    let provider = Logger.MetadataProvider {
      ["trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"]
    }
    let logger = Logger(label: "x") { label in
      var handler = JSONLogHandler(label: label, level: .info) { line in captured.lines.withLock { $0.append(line) } }
      handler.metadataProvider = provider
      return handler
    }
    logger.info("inside a span")
    logger.info("own", metadata: ["span_id": "mine"])
    let objects = try captured.lines.withLock { $0 }.map {
      try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String])
    }
    #expect(objects.count == 2)
    #expect(objects[0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736")
    #expect(objects[0]["span_id"] == "00f067aa0ba902b7")
    #expect(objects[1]["span_id"] == "mine")
  }

  @Test("metadata cannot overwrite the entry's own fields")
  func reservedKeys() throws {
    let captured = Lines()
    let logger = Logger(label: "x") { label in
      JSONLogHandler(label: label, level: .trace) { line in captured.lines.withLock { $0.append(line) } }
    }
    logger.info("real", metadata: ["message": "forged", "level": "critical"])
    let line = try #require(captured.lines.withLock { $0.first })
    let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
    #expect(object["message"] == "real" && object["level"] == "info")
  }
}
