/// Reads a plugin package's tar stream and decides, entry by entry, what
/// may be written: no I/O, bytes in, events out.
///
/// A package comes from the server (and before that from whoever pushed it)
/// and is unpacked by a root agent, so the rules are strict. Refused, with a
/// message that names the entry:
/// - absolute paths, `..` anywhere, NUL bytes;
/// - hard links, devices, FIFOs and any type other than a file, a folder or
///   a symbolic link;
/// - a symbolic link whose target is absolute or leads outside the package,
///   and any entry below a symbolic link (it would be written through it);
/// - set-uid and set-gid bits;
/// - more than ``Limits/entries`` entries or ``Limits/unpackedBytes`` of
///   content; a bad header checksum; a stream that ends inside an entry.
///
/// Written by hand over Debian's `tar`: the unpacking must not run in a
/// child process, and no maintained Swift tar reader is in the package
/// mirror. It reads ustar, GNU long names (`L`, `K`) and pax extended
/// headers (`x`, `g`), which is what GNU tar, bsdtar and Python's tarfile
/// write.
package struct TarStream: Sendable {
  /// Bounds on what one package may unpack to.
  package struct Limits: Sendable, Hashable {
    /// Entries of any kind.
    package var entries: Int
    /// Bytes of file content, all files together.
    package var unpackedBytes: Int64

    package init(entries: Int = 10_000, unpackedBytes: Int64 = 1 << 30) {
      self.entries = entries
      self.unpackedBytes = unpackedBytes
    }
  }

  /// One entry, checked.
  package struct Entry: Sendable, Hashable {
    package enum Kind: Sendable, Hashable {
      /// A file of `size` bytes; `executable` when any execute bit is set.
      case file(size: Int64, executable: Bool)
      case directory
      /// A symbolic link to `target`, which stays inside the package.
      case symlink(target: String)
    }
    /// Relative to the package's root, normalized (`a/b`, never `./a`).
    package var path: String
    package var kind: Kind
  }

  /// What the caller carries out, in order.
  package enum Event: Sendable, Hashable {
    /// A new entry; for a file, its content follows as ``data(_:)``.
    case entry(Entry)
    /// The next bytes of the current file.
    case data([UInt8])
    /// The current file is complete.
    case fileEnd
  }

  private enum Phase: Sendable {
    case header
    /// Content of a file being emitted: `remaining` bytes, then `padding`.
    case content(remaining: Int64, padding: Int)
    /// Content of a meta entry (long name, pax header) being collected.
    case meta(type: UInt8, remaining: Int64, padding: Int)
    /// Padding after content.
    case skip(Int)
    /// Two zero blocks (or one, then the end): nothing more is read.
    case ended
  }

  private let limits: Limits
  private var phase = Phase.header
  private var buffer: [UInt8] = []
  private var metaBytes: [UInt8] = []
  private var longName: String?
  private var longLink: String?
  private var paxPath: String?
  private var paxLink: String?
  private var entryCount = 0
  private var contentBytes: Int64 = 0
  private var zeroBlocks = 0
  private var symlinks: [String] = []

  package init(limits: Limits = Limits()) {
    self.limits = limits
  }

  /// Whether the archive's end marker was read.
  package var isComplete: Bool {
    if case .ended = phase { return true }
    return false
  }

  /// Takes the next bytes of the (decompressed) stream.
  package mutating func feed(_ bytes: some Collection<UInt8>) throws(DeckhandError) -> [Event] {
    buffer.append(contentsOf: bytes)
    var events: [Event] = []
    var offset = 0
    defer { buffer.removeFirst(offset) }
    while true {
      switch phase {
      case .ended:
        offset = buffer.count
        return events
      case .header:
        guard buffer.count - offset >= 512 else { return events }
        let block = Array(buffer[offset..<offset + 512])
        offset += 512
        if let event = try header(block) { events.append(event) }
      case .content(let remaining, let padding):
        let available = min(Int64(buffer.count - offset), remaining)
        guard available > 0 || remaining == 0 else { return events }
        if available > 0 {
          events.append(.data(Array(buffer[offset..<offset + Int(available)])))
          offset += Int(available)
        }
        if available == remaining {
          events.append(.fileEnd)
          phase = padding > 0 ? .skip(padding) : .header
        } else {
          phase = .content(remaining: remaining - available, padding: padding)
          return events
        }
      case .meta(let type, let remaining, let padding):
        let available = min(Int64(buffer.count - offset), remaining)
        metaBytes.append(contentsOf: buffer[offset..<offset + Int(available)])
        offset += Int(available)
        guard available == remaining else {
          phase = .meta(type: type, remaining: remaining - available, padding: padding)
          return events
        }
        try finishMeta(type)
        phase = padding > 0 ? .skip(padding) : .header
      case .skip(let count):
        let available = min(buffer.count - offset, count)
        offset += available
        guard available == count else {
          phase = .skip(count - available)
          return events
        }
        phase = .header
      }
    }
  }

  /// Checks that the stream ended where an archive may end.
  package func finish() throws(DeckhandError) {
    switch phase {
    case .ended,
      .header where buffer.isEmpty && zeroBlocks > 0:
      return
    default:
      throw Self.refuse("it is cut short: it ends inside an entry or before the end of the archive")
    }
  }

  // MARK: Headers

  private mutating func header(_ block: [UInt8]) throws(DeckhandError) -> Event? {
    if block.allSatisfy({ $0 == 0 }) {
      zeroBlocks += 1
      if zeroBlocks == 2 { phase = .ended }
      return nil
    }
    guard zeroBlocks == 0 else { throw Self.refuse("data after the archive's end marker") }
    guard Self.checksumMatches(block) else { throw Self.refuse("a header's checksum is wrong (not a tar file?)") }
    let type = block[156]
    let size = try Self.number(block[124..<136], field: "size")
    guard size >= 0, size < 1 << 40 else { throw Self.refuse("an entry's size is out of range") }
    let padding = Int((512 - size % 512) % 512)

    switch type {
    case UInt8(ascii: "L"), UInt8(ascii: "K"), UInt8(ascii: "x"), UInt8(ascii: "g"):
      guard size <= 1 << 20 else { throw Self.refuse("a long name or pax header over 1 MiB") }
      metaBytes = []
      phase = .meta(type: type, remaining: size, padding: padding)
      return nil
    default: break
    }

    entryCount += 1
    guard entryCount <= limits.entries else {
      throw Self.refuse("more than \(limits.entries) entries (the limit)")
    }
    let rawName = paxPath ?? longName ?? Self.ustarName(block)
    let rawLink = paxLink ?? longLink ?? Self.string(block[157..<257])
    (paxPath, longName, paxLink, longLink) = (nil, nil, nil, nil)
    let mode = try Self.number(block[100..<108], field: "mode")

    guard let path = Self.normalized(rawName) else {
      throw Self.refuse("entry \"\(rawName)\" is an absolute path or leaves the package (..)")
    }
    if let link = symlinks.first(where: { path.hasPrefix($0 + "/") }) {
      throw Self.refuse("entry \"\(path)\" lies below the symbolic link \"\(link)\"")
    }
    guard mode & 0o6000 == 0 else { throw Self.refuse("entry \"\(path)\" is set-uid or set-gid") }

    switch type {
    case UInt8(ascii: "0"), 0, UInt8(ascii: "7"):
      guard !path.isEmpty else { throw Self.refuse("a file entry without a name") }
      contentBytes += size
      guard contentBytes <= limits.unpackedBytes else {
        throw Self.refuse("over \(limits.unpackedBytes) bytes unpacked (the limit)")
      }
      phase = .content(remaining: size, padding: padding)
      return .entry(Entry(path: path, kind: .file(size: size, executable: mode & 0o111 != 0)))
    case UInt8(ascii: "5"):
      phase = padding > 0 || size > 0 ? .skip(Int(size) + padding) : .header
      return path.isEmpty ? nil : .entry(Entry(path: path, kind: .directory))
    case UInt8(ascii: "2"):
      guard !path.isEmpty else { throw Self.refuse("a symbolic link without a name") }
      let folder = path.split(separator: "/").dropLast().joined(separator: "/")
      guard !rawLink.hasPrefix("/"), let resolved = Self.normalized(folder.isEmpty ? rawLink : "\(folder)/\(rawLink)"),
        !resolved.isEmpty
      else {
        throw Self.refuse("symbolic link \"\(path)\" points outside the package (to \"\(rawLink)\")")
      }
      symlinks.append(path)
      phase = size > 0 ? .skip(Int(size) + padding) : .header
      return .entry(Entry(path: path, kind: .symlink(target: rawLink)))
    case UInt8(ascii: "1"): throw Self.refuse("entry \"\(path)\" is a hard link")
    case UInt8(ascii: "3"), UInt8(ascii: "4"): throw Self.refuse("entry \"\(path)\" is a device file")
    case UInt8(ascii: "6"): throw Self.refuse("entry \"\(path)\" is a FIFO")
    default: throw Self.refuse("entry \"\(path)\" has an unsupported type '\(Character(Unicode.Scalar(type)))'")
    }
  }

  private mutating func finishMeta(_ type: UInt8) throws(DeckhandError) {
    switch type {
    case UInt8(ascii: "L"): longName = Self.string(metaBytes[...])
    case UInt8(ascii: "K"): longLink = Self.string(metaBytes[...])
    case UInt8(ascii: "x"):
      let records = try Self.paxRecords(metaBytes)
      paxPath = records["path"] ?? paxPath
      paxLink = records["linkpath"] ?? paxLink
    default: break  // "g": global headers set nothing we use.
    }
    metaBytes = []
  }

  // MARK: Fields

  /// `path` relative and normalized, or nil if it is absolute, holds `..`
  /// or a NUL. "" is the root itself.
  static func normalized(_ path: String) -> String? {
    guard !path.hasPrefix("/"), !path.utf8.contains(0) else { return nil }
    var parts: [Substring] = []
    for part in path.split(separator: "/", omittingEmptySubsequences: true) {
      if part == "." { continue }
      if part == ".." { return nil }
      parts.append(part)
    }
    return parts.joined(separator: "/")
  }

  private static func ustarName(_ block: [UInt8]) -> String {
    let name = string(block[0..<100])
    let isUstar = block[257..<262].elementsEqual("ustar".utf8)
    let prefix = isUstar ? string(block[345..<500]) : ""
    return prefix.isEmpty ? name : "\(prefix)/\(name)"
  }

  private static func string(_ bytes: ArraySlice<UInt8>) -> String {
    String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
  }

  /// An octal field, or GNU's base-256 form (high bit set).
  private static func number(_ field: ArraySlice<UInt8>, field name: String) throws(DeckhandError) -> Int64 {
    if let first = field.first, first & 0x80 != 0 {
      guard first == 0x80, field.dropFirst().prefix(3).allSatisfy({ $0 == 0 }) else {
        throw refuse("a header's \(name) is negative or too large")
      }
      return field.dropFirst(4).reduce(Int64(0)) { $0 << 8 | Int64($1) }
    }
    var value: Int64 = 0
    for byte in field {
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "7"):
        guard value < 1 << 50 else { throw refuse("a header's \(name) is too large") }
        value = value * 8 + Int64(byte - UInt8(ascii: "0"))
      case 0, UInt8(ascii: " "): if value > 0 { return value }
      default: throw refuse("a header's \(name) is not a number")
      }
    }
    return value
  }

  private static func checksumMatches(_ block: [UInt8]) -> Bool {
    guard let stored = try? number(block[148..<156], field: "checksum") else { return false }
    var sum: Int64 = 0
    for (index, byte) in block.enumerated() { sum += (148..<156).contains(index) ? 32 : Int64(byte) }
    return sum == stored
  }

  /// `LENGTH KEY=VALUE\n` records.
  private static func paxRecords(_ bytes: [UInt8]) throws(DeckhandError) -> [String: String] {
    var records: [String: String] = [:]
    var index = 0
    while index < bytes.count {
      guard let space = bytes[index...].firstIndex(of: UInt8(ascii: " ")),
        let length = Int(String(decoding: bytes[index..<space], as: UTF8.self)), length > space - index,
        index + length <= bytes.count, bytes[index + length - 1] == UInt8(ascii: "\n")
      else { throw refuse("a pax header is malformed") }
      let record = bytes[(space + 1)..<(index + length - 1)]
      if let equals = record.firstIndex(of: UInt8(ascii: "=")) {
        records[String(decoding: record[..<equals], as: UTF8.self)] = String(
          decoding: record[(equals + 1)...], as: UTF8.self)
      }
      index += length
    }
    return records
  }

  private static func refuse(_ why: String) -> DeckhandError {
    DeckhandError(.manifestInvalid, "the package is refused: \(why)")
  }
}
