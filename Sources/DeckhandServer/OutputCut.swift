internal import DeckhandCore
internal import DeckhandProtocol
internal import Foundation

/// A job's output as it is appended: numbered after the last stored
/// event, and cut at the per-job limit, with a note saying so. Both stores
/// append through it, so they number and cut alike.
struct OutputCut {
  /// The last sequence number given.
  private(set) var sequence: Int64
  /// The bytes stored so far; `limit + 1` marks "cut, and the note
  /// written" (nothing more is stored).
  private(set) var bytes: Int64
  let limit: Int64

  init(sequence: Int64, bytes: Int64, limit: Int64) {
    self.sequence = sequence
    self.bytes = bytes
    self.limit = limit
  }

  /// What of `events` to store, numbered.
  mutating func append(_ events: [JobOutputEvent]) -> [(sequence: Int64, kind: Int, data: Data, timestampMs: Int64)] {
    var stored: [(sequence: Int64, kind: Int, data: Data, timestampMs: Int64)] = []
    for event in events where bytes <= limit {
      let room = limit - bytes
      let kept = Int64(event.data.count) <= room ? event.data : event.data.prefix(Int(room))
      if !kept.isEmpty {
        sequence += 1
        stored.append((sequence, event.kind, kept, event.timestampMs))
        bytes += Int64(kept.count)
      }
      if kept.count < event.data.count {
        bytes = limit + 1
        sequence += 1
        let note =
          "\n[deckhand] output cut: this job reached the server's limit of \(ByteText.format(limit)) of output (deckhand server --job-output-limit); the rest is not stored\n"
        stored.append(
          (sequence, Deckhand_Server_V1_OutputEvent.Kind.stderr.rawValue, Data(note.utf8), event.timestampMs))
      }
    }
    return stored
  }
}
