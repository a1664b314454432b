import DeckhandCore
import Testing

@Suite("AssignmentChain: the server's diff and batches, the agent's chain check")
struct AssignmentChainTests {
  struct Item: AssignedTask, Equatable {
    var id: String
    var version: String
    var state = 0

    func sameSpec(as other: Item) -> Bool { version == other.version }
  }

  /// Versions v1, v2, … in order.
  final class Versions {
    var next = 0
    func make() -> String {
      next += 1
      return "v\(next)"
    }
  }

  static func ids(_ message: AssignmentChain.Message<Item>) -> [String] {
    message.changes.map { "\($0.action == .update ? "+" : "-")\($0.task.id)" }.sorted()
  }

  @Test("the first message is COMPLETE with every task; the agent takes it as its whole set")
  func completeFirst() {
    var sender = AssignmentChain.Sender<Item>(batchSize: 100)
    let complete = sender.start([Item(id: "a", version: "1"), Item(id: "b", version: "1")], version: "v0")
    #expect(complete.isComplete && complete.resultsIn == "v0")
    #expect(Self.ids(complete) == ["+a", "+b"])
    var receiver = AssignmentChain.Receiver<Item>()
    receiver.streamOpened()
    let accepted1 = receiver.receive(complete)
    #expect(accepted1)
    #expect(receiver.desired?.keys.sorted() == ["a", "b"])
  }

  @Test("then only what changed: new and changed tasks are updates, gone ones removes; a state change sends nothing")
  func incrementalDiff() {
    var sender = AssignmentChain.Sender<Item>(batchSize: 100)
    let versions = Versions()
    _ = sender.start([Item(id: "a", version: "1"), Item(id: "b", version: "1")], version: "v0")
    // Only b's state changed: nothing the node needs.
    #expect(
      sender.next([Item(id: "a", version: "1"), Item(id: "b", version: "1", state: 5)], makeVersion: versions.make)
        .isEmpty)
    let messages = sender.next(
      [Item(id: "a", version: "2"), Item(id: "c", version: "1")], makeVersion: versions.make)
    #expect(messages.count == 1)
    #expect(!messages[0].isComplete && messages[0].appliesTo == "v0" && messages[0].resultsIn == "v1")
    #expect(Self.ids(messages[0]) == ["+a", "+c", "-b"])
  }

  @Test("more changes than the batch size go in several messages, each chained to the one before")
  func batches() {
    var sender = AssignmentChain.Sender<Item>(batchSize: 2)
    let versions = Versions()
    _ = sender.start([], version: "v0")
    let messages = sender.next((1...5).map { Item(id: "t\($0)", version: "1") }, makeVersion: versions.make)
    #expect(messages.map(\.changes.count) == [2, 2, 1])
    #expect(messages.map(\.appliesTo) == ["v0", "v1", "v2"])
    #expect(messages.map(\.resultsIn) == ["v1", "v2", "v3"])
    var receiver = AssignmentChain.Receiver<Item>()
    receiver.streamOpened()
    let accepted2 = receiver.receive(sender.start((1...5).map { Item(id: "t\($0)", version: "1") }, version: "w0"))
    #expect(accepted2)
    #expect(receiver.desired?.count == 5)
  }

  @Test("the agent converges on the server's set through a chain of messages")
  func converges() {
    var sender = AssignmentChain.Sender<Item>(batchSize: 1)
    var receiver = AssignmentChain.Receiver<Item>()
    let versions = Versions()
    receiver.streamOpened()
    let accepted3 = receiver.receive(sender.start([Item(id: "a", version: "1")], version: "v0"))
    #expect(accepted3)
    let target = [Item(id: "b", version: "1"), Item(id: "c", version: "3")]
    for message in sender.next(target, makeVersion: versions.make) {
      let accepted = receiver.receive(message)
      #expect(accepted)
    }
    #expect(receiver.desired?.values.sorted { $0.id < $1.id } == target)
  }

  @Test("a lost message breaks the chain: the agent refuses what follows and keeps its set")
  func brokenChain() {
    var sender = AssignmentChain.Sender<Item>(batchSize: 1)
    var receiver = AssignmentChain.Receiver<Item>()
    let versions = Versions()
    receiver.streamOpened()
    let accepted4 = receiver.receive(sender.start([], version: "v0"))
    #expect(accepted4)
    let messages = sender.next([Item(id: "a", version: "1"), Item(id: "b", version: "1")], makeVersion: versions.make)
    #expect(messages.count == 2)
    let accepted5 = receiver.receive(messages[1])
    #expect(!accepted5)
    #expect(receiver.desired?.isEmpty == true)
  }

  @Test("a new stream must start with a COMPLETE; the set is kept until it comes")
  func newStream() {
    var sender = AssignmentChain.Sender<Item>(batchSize: 10)
    var receiver = AssignmentChain.Receiver<Item>()
    let versions = Versions()
    receiver.streamOpened()
    let accepted6 = receiver.receive(sender.start([Item(id: "a", version: "1")], version: "v0"))
    #expect(accepted6)
    let incremental = sender.next([Item(id: "b", version: "1")], makeVersion: versions.make)
    receiver.streamOpened()
    let accepted7 = receiver.receive(incremental[0])
    #expect(!accepted7)
    #expect(receiver.desired?.keys.sorted() == ["a"])
    var fresh = AssignmentChain.Receiver<Item>()
    let accepted8 = fresh.receive(incremental[0])
    #expect(!accepted8)
  }
}
