/// A task as the assignment stream carries it: known by id, and comparable
/// by what it asks of the node.
package protocol AssignedTask: Sendable {
  var id: String { get }
  /// Whether `other` asks the node for the same thing (a change of only
  /// its state is not sent again).
  func sameSpec(as other: Self) -> Bool
}

/// The assignment stream, after SwarmKit's dispatcher: both halves of one
/// protocol, with no I/O.
///
/// The server's ``Sender`` sends the node's whole set first (COMPLETE),
/// then only what changed (INCREMENTAL: tasks added or changed are
/// updates, tasks gone are removes), at most ``Sender/batchSize`` changes a
/// message. Each message names the version it results in, and each
/// INCREMENTAL message the version it applies to, so the agent's
/// ``Receiver`` notices a lost or reordered message: it then opens the
/// stream again and starts from a COMPLETE.
package enum AssignmentChain {
  /// What a change does to the node's set.
  package enum Action: Sendable, Hashable {
    case update
    case remove
  }

  /// One message of the stream.
  package struct Message<Task: AssignedTask>: Sendable {
    /// COMPLETE: the whole set; INCREMENTAL: changes to the last one.
    package var isComplete: Bool
    /// The version this message applies to (INCREMENTAL only).
    package var appliesTo: String
    /// The version the set has once this message is applied.
    package var resultsIn: String
    package var changes: [(action: Action, task: Task)]

    package init(isComplete: Bool, appliesTo: String, resultsIn: String, changes: [(action: Action, task: Task)]) {
      self.isComplete = isComplete
      self.appliesTo = appliesTo
      self.resultsIn = resultsIn
      self.changes = changes
    }
  }

  /// The server's half: what to send for the node's current set.
  package struct Sender<Task: AssignedTask>: Sendable {
    /// At most this many changes in one INCREMENTAL message.
    package let batchSize: Int
    private var sent: [String: Task] = [:]
    private var version = ""

    package init(batchSize: Int) {
      self.batchSize = max(1, batchSize)
    }

    /// The first message of a stream: every task, as version `version`.
    package mutating func start(_ tasks: [Task], version: String) -> Message<Task> {
      sent = Dictionary(tasks.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
      self.version = version
      return Message(isComplete: true, appliesTo: "", resultsIn: version, changes: tasks.map { (.update, $0) })
    }

    /// The messages that take the node from what was sent to `current`
    /// (none when nothing it needs changed); each takes a new version from
    /// `makeVersion`.
    package mutating func next(_ current: [Task], makeVersion: () -> String) -> [Message<Task>] {
      var changes: [(action: Action, task: Task)] = []
      var next: [String: Task] = [:]
      for task in current {
        next[task.id] = task
        if let old = sent[task.id], old.sameSpec(as: task) { continue }
        changes.append((.update, task))
      }
      for (id, old) in sent where next[id] == nil { changes.append((.remove, old)) }
      sent = next
      var messages: [Message<Task>] = []
      var start = 0
      while start < changes.count {
        let end = min(start + batchSize, changes.count)
        let resultsIn = makeVersion()
        messages.append(
          Message(isComplete: false, appliesTo: version, resultsIn: resultsIn, changes: Array(changes[start..<end])))
        version = resultsIn
        start = end
      }
      return messages
    }
  }

  /// The agent's half: the set the server wants, checked link by link.
  package struct Receiver<Task: AssignedTask>: Sendable {
    /// The tasks the server assigns, by id; nil until the first COMPLETE.
    /// Kept across streams: the node converges on it while the server is
    /// away.
    package private(set) var desired: [String: Task]?
    private var last: String?

    package init() {}

    /// A new stream opened: only a COMPLETE may come first.
    package mutating func streamOpened() { last = nil }

    /// Applies `message`; false when it does not follow from the last one
    /// on this stream (the set is left as it was; open the stream again).
    package mutating func receive(_ message: Message<Task>) -> Bool {
      if message.isComplete {
        var tasks: [String: Task] = [:]
        for change in message.changes where change.action == .update { tasks[change.task.id] = change.task }
        desired = tasks
      } else {
        guard var tasks = desired, let last, message.appliesTo == last else { return false }
        for change in message.changes {
          switch change.action {
          case .update: tasks[change.task.id] = change.task
          case .remove: tasks[change.task.id] = nil
          }
        }
        desired = tasks
      }
      last = message.resultsIn
      return true
    }
  }
}

extension TaskRecord: AssignedTask {}
