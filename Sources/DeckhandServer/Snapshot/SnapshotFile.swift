internal import Crypto
package import DeckhandCore
package import DeckhandProtocol
package import Foundation
internal import SwiftProtobuf

/// The snapshot file format (`Protos/deckhand/control/v1/snapshot.proto`):
/// varint-length-delimited messages, a header, records, an end record and
/// a trailer holding the SHA-256 of everything before it.
///
/// The length prefixes are written here rather than with swift-protobuf's
/// `BinaryDelimited`: that needs the library's Foundation-streams trait,
/// which the package turns off so that plugins do not link full Foundation
/// (see Package.swift); a varint is ten lines.
package enum SnapshotFile {
  package static let magic = "deckhand-snapshot"
  /// The format this build writes and the newest it reads.
  package static let format: UInt32 = 1
  /// The largest message a reader accepts (a record holds at most 1 MiB of
  /// data; a job spec or a secret far less).
  static let maxMessage = 8 << 20
}

/// Writes a snapshot to a file, hashing as it goes. One task uses it at a
/// time (a store's export), hence `@unchecked Sendable`.
package final class SnapshotWriter: @unchecked Sendable {
  private let handle: FileHandle
  private var hasher = SHA256()
  private var buffer = Data()
  private(set) var records: UInt64 = 0

  /// Starts a snapshot at `path` (created, 0600), with its header
  /// (`format`: this build's unless a test says otherwise).
  package init(path: String, source: String, format: UInt32 = SnapshotFile.format) throws {
    guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
      let handle = FileHandle(forWritingAtPath: path)
    else {
      throw DeckhandError(
        .configurationInvalid, "cannot write the snapshot \(path): \(String(cString: strerror(errno)))")
    }
    self.handle = handle
    var header = Deckhand_Control_V1_SnapshotHeader()
    header.magic = SnapshotFile.magic
    header.format = format
    header.deckhandVersion = DeckhandVersion.current
    header.createdMs = nowMs()
    header.source = source
    try append(header, hashed: true)
  }

  /// Adds a record.
  package func write(_ record: Deckhand_Control_V1_SnapshotRecord) throws {
    try append(record, hashed: true)
    records += 1
  }

  /// Ends the snapshot: the end record, the trailer, and the file synced
  /// and closed.
  package func finish() throws {
    var end = Deckhand_Control_V1_SnapshotRecord()
    end.end.records = records
    try append(end, hashed: true)
    var trailer = Deckhand_Control_V1_SnapshotTrailer()
    trailer.sha256 = Data(hasher.finalize())
    try append(trailer, hashed: false)
    try flush()
    try handle.synchronize()
    try handle.close()
  }

  /// Closes the file without finishing it (after a failure).
  package func abandon() { try? handle.close() }

  private func append(_ message: some SwiftProtobuf.Message, hashed: Bool) throws {
    let bytes: Data = try message.serializedBytes()
    var framed = Data()
    var length = UInt64(bytes.count)
    while length >= 0x80 {
      framed.append(UInt8(length & 0x7F) | 0x80)
      length >>= 7
    }
    framed.append(UInt8(length))
    framed.append(bytes)
    if hashed { hasher.update(data: framed) }
    buffer.append(framed)
    if buffer.count >= 1 << 20 { try flush() }
  }

  private func flush() throws {
    guard !buffer.isEmpty else { return }
    do { try handle.write(contentsOf: buffer) } catch {
      throw DeckhandError(.storageUnavailable, "cannot write the snapshot: \(error)", cause: error)
    }
    buffer.removeAll(keepingCapacity: true)
  }
}

/// Reads a snapshot file: ``verify(path:)`` checks all of it (header,
/// every message, the end record's count, the trailer's SHA-256) before
/// anything is restored; ``nextRecord()`` then yields its records. One
/// task uses it at a time (a store's restore), hence `@unchecked Sendable`.
package final class SnapshotReader: @unchecked Sendable {
  private let handle: FileHandle
  private var buffer = Data()
  private var offset = 0
  private var atEnd = false
  package private(set) var header = Deckhand_Control_V1_SnapshotHeader()

  /// Opens `path` and reads its header.
  ///
  /// - Throws: ``DeckhandError`` `configurationInvalid` when the file is
  ///   not a snapshot or is of a newer format.
  package init(path: String) throws {
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw DeckhandError(
        .configurationInvalid, "cannot read the snapshot \(path): \(String(cString: strerror(errno)))")
    }
    self.handle = handle
    guard let bytes = try next(),
      let header = try? Deckhand_Control_V1_SnapshotHeader(serializedBytes: bytes.message),
      header.magic == SnapshotFile.magic
    else {
      throw DeckhandError(.configurationInvalid, "\(path) is not a Deckhand snapshot (no snapshot header)")
    }
    guard header.format <= SnapshotFile.format else {
      throw DeckhandError(
        .configurationInvalid,
        "\(path) is a snapshot of format \(header.format), newer than this deckhand's (\(SnapshotFile.format)); "
          + "it was written by deckhand \(header.deckhandVersion): restore it with that version or newer")
    }
    self.header = header
  }

  deinit { try? handle.close() }

  /// What ``verify(path:)`` found.
  package struct Summary: Sendable {
    package var header: Deckhand_Control_V1_SnapshotHeader
    package var records: UInt64
    /// The server's secrets in the snapshot (the CA).
    package var secrets: [String: String]
  }

  /// Reads the whole file and checks it: every record parses, the end
  /// record counts them, the trailer's SHA-256 matches, nothing follows.
  ///
  /// - Throws: ``DeckhandError`` `configurationInvalid` saying what is
  ///   wrong (truncated, corrupt, a checksum that does not match).
  package static func verify(path: String) throws -> Summary {
    let reader = try SnapshotReader(path: path)
    var hasher = SHA256()
    // From the first byte: the header is hashed too.
    try reader.rewind()
    guard let header = try reader.next() else { throw truncated(path) }
    hasher.update(data: header.frame)
    var records: UInt64 = 0
    var secrets: [String: String] = [:]
    while true {
      guard let framed = try reader.next() else { throw truncated(path) }
      hasher.update(data: framed.frame)
      guard let record = try? Deckhand_Control_V1_SnapshotRecord(serializedBytes: framed.message) else {
        throw DeckhandError(.configurationInvalid, "\(path): record \(records + 1) is corrupt")
      }
      if case .end(let end) = record.record {
        guard end.records == records else {
          throw DeckhandError(
            .configurationInvalid,
            "\(path): the snapshot says it holds \(end.records) records, but \(records) were read")
        }
        break
      }
      if case .secret(let secret) = record.record { secrets[secret.name] = secret.value }
      records += 1
    }
    guard let trailerBytes = try reader.next(),
      let trailer = try? Deckhand_Control_V1_SnapshotTrailer(serializedBytes: trailerBytes.message)
    else { throw truncated(path) }
    guard trailer.sha256 == Data(hasher.finalize()) else {
      throw DeckhandError(
        .configurationInvalid, "\(path): the snapshot's SHA-256 does not match its content; it is damaged")
    }
    guard try reader.next() == nil else {
      throw DeckhandError(.configurationInvalid, "\(path): there is data after the snapshot's trailer")
    }
    return Summary(header: reader.header, records: records, secrets: secrets)
  }

  private static func truncated(_ path: String) -> DeckhandError {
    DeckhandError(.configurationInvalid, "\(path): the snapshot is truncated (it ends before its trailer)")
  }

  /// The next record, or nil after the last (the end record).
  package func nextRecord() throws -> Deckhand_Control_V1_SnapshotRecord? {
    guard !atEnd, let framed = try next() else { return nil }
    let record = try Deckhand_Control_V1_SnapshotRecord(serializedBytes: framed.message)
    if case .end = record.record {
      atEnd = true
      return nil
    }
    return record
  }

  /// Starts again from the file's first byte.
  private func rewind() throws {
    try handle.seek(toOffset: 0)
    buffer = Data()
    offset = 0
  }

  /// The next framed message (its frame bytes, its message bytes), nil at
  /// the end of the file.
  private func next() throws -> (frame: Data, message: Data)? {
    var length: UInt64 = 0
    var shift: UInt64 = 0
    var prefix = 0
    while true {
      guard let byte = try byte(at: prefix) else {
        if prefix == 0 { return nil }
        throw DeckhandError(.configurationInvalid, "the snapshot is truncated (in a length prefix)")
      }
      prefix += 1
      length |= UInt64(byte & 0x7F) << shift
      if byte & 0x80 == 0 { break }
      shift += 7
      guard shift < 64 else { throw DeckhandError(.configurationInvalid, "the snapshot is corrupt (a bad length)") }
    }
    guard length <= SnapshotFile.maxMessage else {
      throw DeckhandError(.configurationInvalid, "the snapshot is corrupt (a message of \(length) bytes)")
    }
    let total = prefix + Int(length)
    try fill(total)
    guard buffer.count - offset >= total else {
      throw DeckhandError(.configurationInvalid, "the snapshot is truncated (in a message)")
    }
    let start = buffer.startIndex + offset
    let frame = buffer[start..<start + total]
    offset += total
    return (Data(frame), Data(frame.dropFirst(prefix)))
  }

  private func byte(at index: Int) throws -> UInt8? {
    try fill(index + 1)
    guard buffer.count - offset > index else { return nil }
    return buffer[buffer.startIndex + offset + index]
  }

  /// Reads until `count` bytes past `offset` are buffered (or the file
  /// ends).
  private func fill(_ count: Int) throws {
    while buffer.count - offset < count {
      if offset > 0 {
        buffer = Data(buffer.dropFirst(offset))
        offset = 0
      }
      guard let more = try handle.read(upToCount: max(1 << 20, count)), !more.isEmpty else { return }
      buffer.append(more)
    }
  }
}
