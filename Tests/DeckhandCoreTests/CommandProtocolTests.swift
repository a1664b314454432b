import DeckhandCore
import Testing

@Suite("Command protocol: scanner, JSON, statuses")
struct CommandProtocolTests {
  @Test("the scanner finds the end of a request fed in pieces, strings and escapes included")
  func scannerPieces() {
    let request = Array(#"  {"Command": "x", "Text": "a } \" ] {", "List": [1, {"b": []}]} trailing"#.utf8)
    let length = request.count - " trailing".utf8.count
    for split in 1..<request.count {
      var scanner = CommandRequestScanner()
      var verdict = scanner.scan(request[..<split])
      if case .incomplete = verdict { verdict = scanner.scan(request[split...]) }
      #expect(verdict == .complete(length: length), "split at \(split)")
    }
  }

  @Test(
    "the scanner refuses what can never be a request",
    arguments: ["hello", "123", "\"text\"", "}", " ]", "true", "\u{0}{"])
  func scannerInvalid(text: String) {
    var scanner = CommandRequestScanner()
    #expect(scanner.scan(Array(text.utf8)) == .invalid)
  }

  @Test("the scanner waits for more of a truncated request")
  func scannerIncomplete() {
    var scanner = CommandRequestScanner()
    #expect(scanner.scan(Array(#"{"Command": "agent.st"#.utf8)) == .incomplete)
    #expect(scanner.scan(Array("   ".utf8)) == .incomplete)
  }

  @Test("JSON round trip, escapes and unicode")
  func jsonRoundTrip() throws {
    let text = #"{"a": [1, -2.5, 3e2, true, false, null], "s": "q\"b\\n\n\t\u00e9\ud83d\ude00/", "o": {}}"#
    let value = try JSONValue.parse(Array(text.utf8))
    guard case .object(let object) = value else {
      Issue.record("not an object")
      return
    }
    #expect(object["a"] == .array([.number(1), .number(-2.5), .number(300), .bool(true), .bool(false), .null]))
    #expect(object["s"] == .string("q\"b\\n\n\té😀/"))
    #expect(object["o"] == .object([:]))
    let again = try JSONValue.parse(value.serialized()!)
    #expect(again == value)
  }

  @Test(
    "JSON that is not valid is refused",
    arguments: [
      "", "{", "{\"a\"}", "{\"a\":1,}", "[1,]", "01", "1.", "-", "1e", "\"abc", "\"\u{1}\"", "{\"a\":1} x",
      "\"\\ud800\"", "\"\\x\"", "nul", "[1 2]", "{1: 2}",
    ])
  func jsonInvalid(text: String) {
    #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Array(text.utf8)) }
  }

  @Test("JSON nested past the limit is refused, not a crash")
  func jsonDepth() throws {
    let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
    #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Array(deep.utf8)) }
    let fine = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
    _ = try JSONValue.parse(Array(fine.utf8))
  }

  @Test("serialized JSON escapes control characters and refuses NaN")
  func jsonSerialize() {
    let bytes = JSONValue.object(["b": .string("x\u{1}\"y"), "a": .number(2)]).serialized()!
    #expect(String(decoding: bytes, as: UTF8.self) == #"{"a":2,"b":"x\u0001\"y"}"#)
    #expect(JSONValue.array([.number(.nan)]).serialized() == nil)
  }

  @Test("the statuses carry the guest agent's messages")
  func statuses() {
    #expect(CommandStatus.commandNotFound.message == "Could not find a handler for the requested command")
    #expect(CommandStatus.badRequest.message == "Could not parse valid JSON from request")
    #expect(CommandStatus.connectionError.message == "Connection error")
    #expect(CommandStatus.timeout.message == "Connection timeout before reading valid request")
    #expect(
      String(decoding: CommandStatus.timeout.response, as: UTF8.self)
        == #"{"Status":104,"StatusMessage":"Connection timeout before reading valid request"}"#)
  }

  @Test("durations as written in flags and files")
  func durations() {
    #expect(DurationText.parse("10s") == .seconds(10))
    #expect(DurationText.parse("250ms") == .milliseconds(250))
    #expect(DurationText.parse("2m") == .seconds(120))
    #expect(DurationText.parse("7d") == .seconds(7 * 86_400))
    #expect(DurationText.parse("1.5") == .milliseconds(1500))
    #expect(DurationText.parse("-1s") == nil)
    #expect(DurationText.parse("soon") == nil)
    #expect(DurationText.format(.seconds(10)) == "10s")
    #expect(DurationText.format(.milliseconds(250)) == "250ms")
  }

  @Test("default locations follow Linux conventions")
  func locations() {
    let root = AgentLocations.defaults(uid: 0, environment: [:])
    #expect(root.stateDirectory == "/var/lib/deckhand")
    #expect(root.commandSocket == "/run/deckhand/commands.sock")
    let user = AgentLocations.defaults(
      uid: 1000, environment: ["HOME": "/home/u", "XDG_STATE_HOME": "/s", "XDG_RUNTIME_DIR": "/run/user/1000"])
    #expect(user.stateDirectory == "/s/deckhand")
    #expect(user.commandSocket == "/run/user/1000/deckhand/commands.sock")
    let bare = AgentLocations.defaults(uid: 1000, environment: ["HOME": "/home/u"])
    #expect(bare.stateDirectory == "/home/u/.local/state/deckhand")
    #expect(bare.commandSocket == "/tmp/deckhand-1000/commands.sock")
  }
}
