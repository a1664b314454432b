internal import Foundation

/// Writes tar archives byte by byte for tests, hostile ones included
/// (entries `tar` itself would refuse to make: `../x`, devices, set-uid).
package struct TarWriter {
  package private(set) var bytes: [UInt8] = []

  package init() {}

  /// Appends one entry. `type`: "0" file, "5" folder, "2" symlink, "1"
  /// hard link, "3" character device, "6" FIFO, "L" GNU long name, "x" pax.
  package mutating func add(
    _ name: String, type: Character = "0", mode: Int = 0o644, content: [UInt8] = [], link: String = ""
  ) {
    var header = [UInt8](repeating: 0, count: 512)
    func put(_ text: String, at offset: Int, length: Int) {
      for (index, byte) in text.utf8.prefix(length).enumerated() { header[offset + index] = byte }
    }
    func octal(_ value: Int, at offset: Int, length: Int) {
      put(
        String(repeating: "0", count: max(0, length - 1 - String(value, radix: 8).count)) + String(value, radix: 8),
        at: offset, length: length - 1)
    }
    put(name, at: 0, length: 100)
    octal(mode, at: 100, length: 8)
    octal(0, at: 108, length: 8)
    octal(0, at: 116, length: 8)
    octal(content.count, at: 124, length: 12)
    octal(0, at: 136, length: 12)
    header[156] = UInt8(ascii: type.unicodeScalars.first!)
    put(link, at: 157, length: 100)
    put("ustar", at: 257, length: 6)
    put("00", at: 263, length: 2)
    for index in 148..<156 { header[index] = UInt8(ascii: " ") }
    let sum = header.reduce(0) { $0 + Int($1) }
    octal(sum, at: 148, length: 7)
    header[154] = 0
    header[155] = UInt8(ascii: " ")
    bytes += header
    bytes += content
    bytes += [UInt8](repeating: 0, count: (512 - content.count % 512) % 512)
  }

  /// The archive with its end marker.
  package var finished: [UInt8] { bytes + [UInt8](repeating: 0, count: 1024) }

  /// `finished`, gzipped with the system's gzip, written to `path`.
  package func writeGzip(to path: String) throws {
    let raw = path + ".tar"
    try Data(finished).write(to: URL(fileURLWithPath: raw))
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/gzip")
    process.arguments = ["-f", "-n", raw]
    try process.run()
    process.waitUntilExit()
    try FileManager.default.moveItem(atPath: raw + ".gz", toPath: path)
  }
}
