import DeckhandCore
import DeckhandTestSupport
import Testing

@Suite("TarStream: what a package may unpack to")
struct TarStreamTests {
  /// The events of `archive`, fed in pieces of `chunk` bytes.
  private func events(_ archive: [UInt8], chunk: Int = 100, limits: TarStream.Limits = .init()) throws
    -> [TarStream.Event]
  {
    var stream = TarStream(limits: limits)
    var events: [TarStream.Event] = []
    var offset = 0
    while offset < archive.count {
      let end = min(archive.count, offset + chunk)
      events += try stream.feed(archive[offset..<end])
      offset = end
    }
    try stream.finish()
    return events
  }

  private func refusal(_ archive: [UInt8], limits: TarStream.Limits = .init()) -> String? {
    do {
      _ = try events(archive, limits: limits)
      return nil
    } catch {
      return (error as? DeckhandError)?.message ?? "\(error)"
    }
  }

  @Test("files, folders and links inside come out in order, whatever the chunk size", arguments: [1, 7, 512, 4096])
  func goodPackage(chunk: Int) throws {
    var tar = TarWriter()
    tar.add("./", type: "5", mode: 0o755)
    tar.add("./plugin.json", content: Array(#"{"name":"echo"}"#.utf8))
    tar.add("./bin/", type: "5", mode: 0o755)
    tar.add("./bin/echo", mode: 0o755, content: Array(repeating: 7, count: 1000))
    tar.add("./bin/current", type: "2", mode: 0o777, link: "echo")
    tar.add("./lib/empty")
    let got = try events(tar.finished, chunk: chunk)
    let entries = got.compactMap { if case .entry(let entry) = $0 { entry } else { nil } }
    #expect(entries.map(\.path) == ["plugin.json", "bin", "bin/echo", "bin/current", "lib/empty"])
    #expect(entries[2].kind == .file(size: 1000, executable: true))
    #expect(entries[3].kind == .symlink(target: "echo"))
    let data = got.reduce(into: [UInt8]()) { if case .data(let bytes) = $1 { $0 += bytes } }
    #expect(data.count == 15 + 1000)
    #expect(got.filter { $0 == .fileEnd }.count == 3)
  }

  @Test(
    "hostile entries are refused, naming the entry",
    arguments: [
      ("../evil", "0", "", "leaves the package"), ("/etc/cron.d/x", "0", "", "absolute path"),
      ("a/../../x", "0", "", "leaves the package"), ("link", "2", "/etc/shadow", "points outside"),
      ("link", "2", "../../etc", "points outside"), ("hard", "1", "plugin.json", "hard link"),
      ("dev", "3", "", "device file"), ("fifo", "6", "", "FIFO"), ("odd", "Z", "", "unsupported type"),
    ])
  func hostile(name: String, type: String, link: String, expected: String) {
    var tar = TarWriter()
    tar.add("plugin.json", content: Array("{}".utf8))
    tar.add(name, type: Character(type), link: link)
    let message = refusal(tar.finished)
    #expect(message?.contains(expected) == true, "\(message ?? "accepted")")
  }

  @Test("set-uid and set-gid files are refused")
  func setuid() {
    for mode in [0o4755, 0o2755] {
      var tar = TarWriter()
      tar.add("bin/x", mode: mode, content: [1])
      #expect(refusal(tar.finished)?.contains("set-uid or set-gid") == true)
    }
  }

  @Test("an entry below a symbolic link is refused: it would be written through it")
  func throughLink() {
    var tar = TarWriter()
    tar.add("dir", type: "5")
    tar.add("out", type: "2", link: "dir")
    tar.add("out/file", content: [1])
    #expect(refusal(tar.finished)?.contains("below the symbolic link \"out\"") == true)
  }

  @Test("GNU long names and pax paths are checked like any other name")
  func longNames() throws {
    var long = TarWriter()
    let name = String(repeating: "d/", count: 80) + "file"
    long.add("././@LongLink", type: "L", content: Array(name.utf8) + [0])
    long.add("truncated", content: [1])
    let entries = try events(long.finished).compactMap { if case .entry(let entry) = $0 { entry } else { nil } }
    #expect(entries.map(\.path) == [name])

    var pax = TarWriter()
    let record = "path=../../etc/passwd\n"
    let length = record.utf8.count + 3
    pax.add("PaxHeader", type: "x", content: Array("\(length) \(record)".utf8))
    pax.add("innocent", content: [1])
    #expect(refusal(pax.finished)?.contains("../../etc/passwd") == true)
  }

  @Test("limits: entries and unpacked bytes")
  func limits() {
    var many = TarWriter()
    for index in 0..<5 { many.add("f\(index)") }
    #expect(refusal(many.finished, limits: .init(entries: 4))?.contains("more than 4 entries") == true)
    var big = TarWriter()
    big.add("a", content: Array(repeating: 0, count: 600))
    big.add("b", content: Array(repeating: 0, count: 600))
    #expect(refusal(big.finished, limits: .init(unpackedBytes: 1000))?.contains("over 1000 bytes") == true)
  }

  @Test("a stream cut in an entry or without its end marker, or with a bad checksum, is refused")
  func truncated() {
    var tar = TarWriter()
    tar.add("a", content: Array(repeating: 1, count: 2000))
    #expect(refusal(Array(tar.bytes.prefix(1200)))?.contains("cut short") == true)
    #expect(refusal(tar.bytes)?.contains("cut short") == true, "no end marker")
    var corrupt = tar.finished
    corrupt[10] ^= 0xFF
    #expect(refusal(corrupt)?.contains("checksum") == true)
  }
}
