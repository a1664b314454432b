internal import DeckhandCore
internal import DeckhandPluginHost
internal import DeckhandProtocol
internal import DeckhandRuntime
internal import Foundation
internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
internal import Logging

/// The agent's side of `deckhand logs`: answers each request the server
/// sends on `LogRequests` with a `SendLogs` stream of the plugin's
/// stdout, stderr and error log lines (the backlog, then, when following,
/// each new line), until the server ends the call.
struct PluginLogReader: Sendable {
  typealias Dispatcher = Deckhand_Dispatcher_V1_Dispatcher.Client<HTTP2ClientTransport.Posix>

  /// Most backlog read from each file (its last bytes).
  static let maxBacklogBytes: Int64 = 4 << 20
  /// A longer line is cut (and says so).
  static let maxLineBytes = 16 << 10
  /// Lines are sent in chunks of at most this.
  static let maxChunkBytes = 64 << 10
  /// How often a followed file is looked at.
  static let pollInterval: Duration = .milliseconds(250)

  let manager: PluginManager
  let paths: HostPaths
  let logger: Logger

  /// Takes requests until the stream ends; an older server without logs
  /// (UNIMPLEMENTED) leaves this waiting until cancelled.
  func run(_ dispatcher: Dispatcher, metadata: Metadata) async throws {
    do {
      try await dispatcher.logRequests(Deckhand_Dispatcher_V1_LogRequestsRequest(), metadata: metadata) { response in
        try await withThrowingDiscardingTaskGroup { group in
          for try await request in response.messages {
            group.addTask { await self.answer(request, dispatcher, metadata: metadata) }
          }
        }
      }
    } catch let error as RPCError where error.code == .unimplemented {
      while !Task.isCancelled { try await Task.sleep(for: .seconds(3600)) }
    }
  }

  /// One answer: the files' backlog, then new lines while following.
  private func answer(_ request: Deckhand_Dispatcher_V1_LogRequest, _ dispatcher: Dispatcher, metadata: Metadata)
    async
  {
    do {
      try await dispatcher.sendLogs(metadata: metadata) { writer in
        var first = Deckhand_Dispatcher_V1_LogChunk()
        first.requestID = request.requestID
        let files: [(stream: String, path: String)]
        do {
          _ = try await manager.entry(request.plugin)
          files = [
            ("stdout", try paths.stdoutLog(request.plugin)), ("stderr", try paths.stderrLog(request.plugin)),
            ("errors", try paths.errorLog(request.plugin)),
          ]
        } catch {
          first.error = "\(error)"
          try await writer.write(first)
          return
        }
        try await writer.write(first)
        let tail = request.tail > 0 ? Int(request.tail) : 100
        var offsets: [String: Int64] = [:]
        for file in files {
          let (lines, end) = try await BlockingWork.run {
            Self.backlog(file.path, lines: tail, sinceMs: request.sinceMs)
          }
          offsets[file.path] = end
          try await send(lines.map { (file.stream, $0) }, writer)
        }
        guard request.follow else { return }
        var partial: [String: [UInt8]] = [:]
        while !Task.isCancelled {
          try await Task.sleep(for: Self.pollInterval)
          for file in files {
            let start = offsets[file.path] ?? 0
            let (bytes, end) = try await BlockingWork.run { Self.appended(file.path, from: start) }
            offsets[file.path] = end
            guard !bytes.isEmpty else { continue }
            var pending = partial[file.path] ?? []
            pending += bytes
            var lines: [(String, String)] = []
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
              lines.append((file.stream, Self.line(pending[..<newline])))
              pending.removeSubrange(...newline)
            }
            if pending.count > Self.maxLineBytes {
              lines.append((file.stream, Self.line(pending[...])))
              pending = []
            }
            partial[file.path] = pending
            try await send(lines, writer)
          }
        }
      } onResponse: { _ in
      }
    } catch {
      logger.debug("log request ended", metadata: ["plugin": "\(request.plugin)", "error": "\(error)"])
    }
  }

  private func send(_ lines: [(stream: String, text: String)], _ writer: RPCWriter<Deckhand_Dispatcher_V1_LogChunk>)
    async throws
  {
    var chunk = Deckhand_Dispatcher_V1_LogChunk()
    var bytes = 0
    for (stream, text) in lines {
      var line = Deckhand_Dispatcher_V1_LogLine()
      line.stream = stream
      line.text = text
      chunk.lines.append(line)
      bytes += text.utf8.count + 16
      if bytes >= Self.maxChunkBytes {
        try await writer.write(chunk)
        chunk = Deckhand_Dispatcher_V1_LogChunk()
        bytes = 0
      }
    }
    if !chunk.lines.isEmpty { try await writer.write(chunk) }
  }

  /// A line's text: invalid UTF-8 replaced, cut at ``maxLineBytes``.
  static func line(_ bytes: ArraySlice<UInt8>) -> String {
    guard bytes.count > maxLineBytes else { return String(decoding: bytes, as: UTF8.self) }
    return String(decoding: bytes.prefix(maxLineBytes), as: UTF8.self) + " [line cut at \(maxLineBytes) bytes]"
  }

  /// The last `count` lines of `path` (from at most its last
  /// ``maxBacklogBytes``), none if it was last written before `sinceMs`;
  /// and its size, where following starts.
  static func backlog(_ path: String, lines count: Int, sinceMs: Int64) -> ([String], Int64) {
    guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
      let size = (attributes[.size] as? NSNumber)?.int64Value
    else { return ([], 0) }
    if sinceMs > 0, let modified = attributes[.modificationDate] as? Date,
      Int64(modified.timeIntervalSince1970 * 1000) < sinceMs
    {
      return ([], size)
    }
    guard let handle = FileHandle(forReadingAtPath: path) else { return ([], size) }
    defer { try? handle.close() }
    let start = max(0, size - maxBacklogBytes)
    try? handle.seek(toOffset: UInt64(start))
    guard let data = try? handle.read(upToCount: Int(size - start)) else { return ([], size) }
    var bytes = ArraySlice(data)
    // A backlog that starts mid-file starts at its next whole line.
    if start > 0, let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) { bytes = bytes[(newline + 1)...] }
    let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast(
      bytes.last == UInt8(ascii: "\n") ? 1 : 0)
    return (lines.suffix(count).map { line($0) }, start + Int64(data.count))
  }

  /// What was appended to `path` after `offset`, and the new offset; from
  /// the start when the file shrank (it was rotated or truncated).
  static func appended(_ path: String, from offset: Int64) -> ([UInt8], Int64) {
    guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
      let size = (attributes[.size] as? NSNumber)?.int64Value
    else { return ([], 0) }
    let start = size < offset ? 0 : offset
    guard size > start, let handle = FileHandle(forReadingAtPath: path) else { return ([], start) }
    defer { try? handle.close() }
    try? handle.seek(toOffset: UInt64(start))
    let data = (try? handle.read(upToCount: Int(min(size - start, 1 << 20)))) ?? Data()
    return (Array(data), start + Int64(data.count))
  }
}
