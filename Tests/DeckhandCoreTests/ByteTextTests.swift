import DeckhandCore
import Testing

@Suite("ByteText: sizes in flags")
struct ByteTextTests {
  @Test("binary units and bare bytes parse; decimal units, negatives and words do not")
  func parse() {
    #expect(ByteText.parse("64MiB") == 64 << 20)
    #expect(ByteText.parse("512KiB") == 512 << 10)
    #expect(ByteText.parse("1.5GiB") == 3 << 29)
    #expect(ByteText.parse("1000") == 1000)
    for bad in ["64MB", "-1", "-1MiB", "lots", "", "1e30GiB"] { #expect(ByteText.parse(bad) == nil, "\(bad)") }
  }

  @Test("formats with the largest unit that reads well")
  func format() {
    #expect(ByteText.format(64 << 20) == "64MiB")
    #expect(ByteText.format(3 << 29) == "1.5GiB")
    #expect(ByteText.format(100) == "100 bytes")
  }
}
