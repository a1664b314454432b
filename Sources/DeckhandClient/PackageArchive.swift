internal import CDeckhandInflate
package import DeckhandCore
internal import Foundation

/// Reads and unpacks a plugin package (a tar.gz) in this process: zlib
/// inflates it, ``TarStream`` decides what each entry may be, and this type
/// writes what is allowed. No child process, so nothing waits on a pipe.
package enum PackageArchive {
  /// Bounds on a package, besides ``TarStream/Limits``.
  package struct Limits: Sendable, Hashable {
    /// The tar.gz file itself.
    package var compressedBytes: Int64
    /// What the stream may unpack to.
    package var stream: TarStream.Limits

    package init(compressedBytes: Int64 = 256 << 20, stream: TarStream.Limits = TarStream.Limits()) {
      self.compressedBytes = compressedBytes
      self.stream = stream
    }
  }

  /// Unpacks `archive` into `directory`, which must not exist yet: the
  /// entries go to a sibling folder first, renamed to `directory` only once
  /// the whole package was read and written, so a half-unpacked package is
  /// never found there. Files get at most 0755 (0644 when not executable),
  /// less what the umask takes.
  ///
  /// - Throws: ``DeckhandError`` `manifestInvalid` naming what is refused,
  ///   and nothing is left behind.
  package static func unpack(_ archive: String, into directory: String, limits: Limits = Limits()) throws {
    let staging = "\(directory).partial-\(UInt32.random(in: 0...UInt32.max))"
    guard mkdir(staging, 0o700) == 0 else {
      throw DeckhandError(
        .configurationInvalid, "cannot create \(staging) to unpack into: \(String(cString: strerror(errno)))")
    }
    var writer = Writer(root: staging)
    do {
      try read(archive, limits: limits) { event in
        try writer.apply(event)
        return true
      }
      writer.closeFile()
      guard rename(staging, directory) == 0 else {
        throw DeckhandError(
          .configurationInvalid, "cannot move the unpacked package to \(directory): \(String(cString: strerror(errno)))"
        )
      }
    } catch {
      writer.closeFile()
      try? FileManager.default.removeItem(atPath: staging)
      throw error
    }
  }

  /// The bytes of the file at `wanted` (normalized: `plugin.json`), read
  /// without unpacking; nil if the package has no such file.
  package static func file(_ wanted: String, in archive: String, maximumBytes: Int = 1 << 20) throws -> [UInt8]? {
    var found: [UInt8]?
    var collecting = false
    try read(archive, limits: Limits()) { event in
      switch event {
      case .entry(let entry):
        collecting = entry.path == wanted && { if case .file = entry.kind { true } else { false } }()
        if collecting { found = [] }
      case .data(let bytes) where collecting:
        found?.append(contentsOf: bytes)
        guard (found?.count ?? 0) <= maximumBytes else {
          throw DeckhandError(.manifestInvalid, "the package's \(wanted) is over \(maximumBytes) bytes")
        }
      case .fileEnd where collecting: return false
      default: break
      }
      return true
    }
    return found
  }

  /// Inflates `archive` and feeds ``TarStream``, calling `handle` with each
  /// event until it returns false or the archive ends.
  static func read(
    _ archive: String, limits: Limits, _ handle: (TarStream.Event) throws -> Bool
  ) throws {
    let fd = open(archive, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
      throw DeckhandError(.manifestInvalid, "cannot read the package \(archive): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
      throw DeckhandError(.manifestInvalid, "the package \(archive) is not a regular file")
    }
    guard Int64(info.st_size) <= limits.compressedBytes else {
      throw DeckhandError(
        .manifestInvalid, "the package is refused: \(info.st_size) bytes, over \(limits.compressedBytes) (the limit)")
    }

    guard let inflater = deckhand_inflater_new() else {
      throw DeckhandError(.internalError, "zlib cannot start inflating")
    }
    defer { deckhand_inflater_free(inflater) }
    var tar = TarStream(limits: limits.stream)
    var input = [UInt8](repeating: 0, count: 64 << 10)
    var output = [UInt8](repeating: 0, count: 256 << 10)
    var ended = false
    var (start, available, endOfFile) = (0, 0, false)
    while !ended {
      if start == available && !endOfFile {
        let count = Foundation.read(fd, &input, input.count)
        guard count >= 0 else {
          throw DeckhandError(.manifestInvalid, "cannot read the package: \(String(cString: strerror(errno)))")
        }
        (start, available, endOfFile) = (0, count, count == 0)
      }
      var consumed = 0
      var produced = 0
      let status = input.withUnsafeBufferPointer { inBuffer in
        output.withUnsafeMutableBufferPointer { outBuffer in
          deckhand_inflater_run(
            inflater, inBuffer.baseAddress! + start, available - start, &consumed, outBuffer.baseAddress!,
            outBuffer.count, &produced)
        }
      }
      start += consumed
      guard status >= 0 else {
        throw DeckhandError(.manifestInvalid, "the package is refused: it is not a valid gzip stream (zlib \(status))")
      }
      ended = status == 1
      for event in try tar.feed(output[0..<produced]) {
        guard try handle(event) else { return }
      }
      if tar.isComplete { break }
      // No progress: the input ran out (cut short) or zlib is stuck.
      if consumed == 0 && produced == 0 && (endOfFile || start < available) { break }
    }
    guard ended || tar.isComplete else {
      throw DeckhandError(.manifestInvalid, "the package is refused: the gzip stream is cut short")
    }
    try tar.finish()
  }

  /// Carries out ``TarStream`` events below `root`.
  private struct Writer {
    let root: String
    var file: Int32 = -1
    var path = ""

    init(root: String) { self.root = root }

    mutating func apply(_ event: TarStream.Event) throws {
      switch event {
      case .entry(let entry):
        let target = "\(root)/\(entry.path)"
        try makeParents(of: entry.path)
        switch entry.kind {
        case .directory:
          if mkdir(target, 0o755) != 0 {
            guard errno == EEXIST, isDirectory(target) else { throw failure("cannot create folder", entry.path) }
          }
        case .symlink(let destination):
          guard symlink(destination, target) == 0 else { throw failure("cannot create link", entry.path) }
        case .file(_, let executable):
          file = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, executable ? 0o755 : 0o644)
          guard file >= 0 else {
            throw failure(errno == EEXIST ? "a second entry for" : "cannot create", entry.path)
          }
          path = entry.path
        }
      case .data(let bytes):
        var written = 0
        while written < bytes.count {
          let result = bytes[written...].withUnsafeBytes { Foundation.write(file, $0.baseAddress, $0.count) }
          guard result > 0 else { throw failure("cannot write", path) }
          written += result
        }
      case .fileEnd:
        closeFile()
      }
    }

    mutating func closeFile() {
      if file >= 0 { close(file) }
      file = -1
    }

    /// Makes the folders above `relative` that an archive may leave out,
    /// each a real folder (never through a link).
    private func makeParents(of relative: String) throws {
      var current = root
      for part in relative.split(separator: "/").dropLast() {
        current += "/\(part)"
        if mkdir(current, 0o755) != 0 {
          guard errno == EEXIST, isDirectory(current) else { throw failure("cannot create folder", relative) }
        }
      }
    }

    private func isDirectory(_ path: String) -> Bool {
      var info = stat()
      return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    private func failure(_ what: String, _ relative: String) -> DeckhandError {
      DeckhandError(
        .manifestInvalid, "the package is refused: \(what) \"\(relative)\": \(String(cString: strerror(errno)))")
    }
  }
}
