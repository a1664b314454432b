package import DeckhandCore
package import Foundation
internal import Synchronization

/// A throw-away OTLP/gRPC trace receiver (`Tests/Fixtures/otlp/otlp_receiver.py`
/// on Debian's python3-grpcio) that keeps every span it is sent; stopped by
/// ``stop()`` or when released.
package final class OTLPReceiver: Sendable {
  /// One span as the receiver decoded it.
  package struct Span: Sendable, Hashable, CustomStringConvertible {
    package var service: String
    package var name: String
    /// OTLP's SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    package var kind: Int
    package var traceID: String
    package var spanID: String
    /// Empty for a root span.
    package var parentSpanID: String
    package var attributes: [String: String]

    package var description: String {
      "\(service) \"\(name)\" trace=\(traceID) span=\(spanID) parent=\(parentSpanID.isEmpty ? "-" : parentSpanID)"
    }
  }

  package let process: Process
  /// The port it receives on (127.0.0.1).
  package let port: Int
  private let collector = Collector()

  /// `http://127.0.0.1:PORT`, for `--otlp-endpoint`.
  package var endpoint: String { "http://127.0.0.1:\(port)" }

  deinit {
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
  }

  /// Starts it and waits until it listens.
  package init(script: String = Fixtures.packageRoot + "/Tests/Fixtures/otlp/otlp_receiver.py") async throws {
    process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    process.arguments = [script]
    process.standardInput = FileHandle.nullDevice
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.standardError
    try process.run()
    let (ports, announce) = AsyncStream.makeStream(of: Int.self)
    let reading = output.fileHandleForReading
    // The receiver's lines, on a thread of their own (a blocking read).
    let collector = self.collector
    Thread.detachNewThread {
      var pending = Data()
      while true {
        let chunk = reading.availableData
        if chunk.isEmpty { break }
        pending.append(chunk)
        while let newline = pending.firstIndex(of: 0x0A) {
          let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
          pending.removeSubrange(pending.startIndex...newline)
          if line.hasPrefix("PORT "), let port = Int(line.dropFirst(5)) {
            announce.yield(port)
            announce.finish()
          } else {
            collector.take(line)
          }
        }
      }
      announce.finish()
    }
    var bound: Int?
    let deadline = Task {
      try await Task.sleep(for: .seconds(20))
      announce.finish()
    }
    for await port in ports {
      bound = port
      break
    }
    deadline.cancel()
    guard let bound else {
      if process.isRunning { kill(process.processIdentifier, SIGKILL) }
      throw DeckhandError(
        .startTimeout, "the OTLP receiver did not start within 20 s (needs /usr/bin/python3 with python3-grpcio)")
    }
    port = bound
  }

  /// Every span received so far, in the order they came.
  package var spans: [Span] { collector.received.withLock { $0 } }

  /// Lines it printed that were not spans (should be none).
  package var unreadable: [String] { collector.problems.withLock { $0 } }

  package func stop() {
    process.terminateWithin5Seconds()
  }
}

/// What the receiver printed, read into spans.
private final class Collector: Sendable {
  let received = Mutex<[OTLPReceiver.Span]>([])
  let problems = Mutex<[String]>([])

  func take(_ line: String) {
    guard case .object(let fields) = try? JSONValue.parse(Array(line.utf8)) else {
      problems.withLock { $0.append(line) }
      return
    }
    func text(_ key: String) -> String {
      if case .string(let value) = fields[key] { return value }
      return ""
    }
    var kind = 0
    if case .number(let number) = fields["kind"] { kind = Int(number) }
    var attributes: [String: String] = [:]
    if case .object(let pairs) = fields["attributes"] {
      for (key, value) in pairs {
        switch value {
        case .string(let text): attributes[key] = text
        case .number(let number): attributes[key] = "\(number)"
        case .bool(let flag): attributes[key] = "\(flag)"
        default: break
        }
      }
    }
    let span = OTLPReceiver.Span(
      service: text("service"), name: text("name"), kind: kind, traceID: text("trace_id"), spanID: text("span_id"),
      parentSpanID: text("parent_span_id"), attributes: attributes)
    received.withLock { $0.append(span) }
  }
}
