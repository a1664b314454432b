import DeckhandCore
import Testing

@Suite("PluginName: one path component, never the root or its parent")
struct PluginNameTests {
  @Test(
    "valid names",
    arguments: ["echo", "a", "0", "python-echo", "kv_store.v2", "a..b", String(repeating: "x", count: 64)])
  func valid(name: String) {
    #expect(PluginName.isValid(name))
  }

  @Test(
    "refused: dots only, a slash, upper case, a leading dot or dash, empty, too long, non-ASCII, NUL",
    arguments: [
      ".", "..", "...", "a/b", "../etc", "/abs", "Echo", ".hidden", "-x", "_x", "", String(repeating: "x", count: 65),
      "é", "a\u{0}b", "a b",
    ])
  func refused(name: String) {
    #expect(!PluginName.isValid(name))
    #expect(throws: DeckhandError.self) { try PluginName.check(name) }
  }
}
