import DeckhandCore
import Testing

@Suite("TaskState: the dispatcher protocol's numbers, typed")
struct TaskStateTests {
  @Test("raw values are the protocol's TASK_STATE_* numbers (the store keeps them)")
  func numbers() {
    #expect(TaskState.allCases.map(\.rawValue) == Array(0...7))
    #expect(TaskState.running.rawValue == 5 && TaskState.failed.rawValue == 6)
  }

  @Test("in progress: sent but not yet RUNNING or FAILED; settled: RUNNING or FAILED")
  func classes() {
    #expect(TaskState.allCases.filter(\.isInProgress) == [.new, .assigned, .accepted, .preparing, .starting])
    #expect(TaskState.allCases.filter(\.isSettled) == [.running, .failed])
  }
}
