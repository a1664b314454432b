import DeckhandProtocol
import Foundation
import Testing

@testable import DeckhandAgent

@Suite("JobRunner.Execution: what a job keeps for the server while no stream is open")
struct JobRunnerTests {
  static func output(_ bytes: Int) -> Deckhand_Server_V1_RunnerJobStreamRequest {
    var event = Deckhand_Server_V1_OutputEvent()
    event.data = Data(repeating: 65, count: bytes)
    var message = Deckhand_Server_V1_RunnerJobStreamRequest()
    message.terminal.events = [event]
    return message
  }

  @Test(
    "output while the server is away is kept up to the limit, then dropped and the drop said; heartbeats are not kept")
  func pendingOutputIsCapped() async throws {
    let execution = JobRunner.Execution(id: "j1")
    let chunk = 64 << 10
    let chunks = JobRunner.Execution.pendingOutputLimit / chunk
    for _ in 0..<(chunks + 100) { execution.send(Self.output(chunk)) }
    var beat = Deckhand_Server_V1_RunnerJobStreamRequest()
    beat.heartbeat = .init()
    for _ in 0..<1000 { execution.send(beat) }
    var result = Deckhand_Server_V1_RunnerJobStreamRequest()
    result.complete = .init()
    execution.finish(result)

    let (stream, sink) = AsyncStream.makeStream(of: Deckhand_Server_V1_RunnerJobStreamRequest.self)
    execution.attach(sink)
    sink.finish()
    var kept = 0
    var notes: [String] = []
    var heartbeats = 0
    var last: Deckhand_Server_V1_RunnerJobStreamRequest?
    for await message in stream {
      last = message
      switch message.event {
      case .terminal(let terminal):
        for event in terminal.events {
          if event.data.first == 65 {
            kept += event.data.count
          } else {
            notes.append(String(decoding: event.data, as: UTF8.self))
          }
        }
      case .heartbeat: heartbeats += 1
      default: break
      }
    }
    #expect(kept == JobRunner.Execution.pendingOutputLimit)
    #expect(
      notes == [
        "[deckhand] 6.3MiB of output dropped here: the server was away and the runner keeps at most 16MiB per job for it\n"
      ])
    #expect(heartbeats == 0)
    if case .complete = last?.event {} else { Issue.record("the result comes last: \(String(describing: last))") }
  }
}
