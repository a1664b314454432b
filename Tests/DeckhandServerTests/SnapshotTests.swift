import DeckhandCore
import DeckhandProtocol
import DeckhandServer
import DeckhandTestSupport
import Foundation
import Testing

/// Snapshots move a store's whole state between SQLite and PostgreSQL,
/// and a damaged one changes nothing.
@Suite("Snapshots: SQLite and PostgreSQL round trips, damaged files refused")
struct SnapshotTests {
  /// A store with something of everything.
  static func fill(_ store: any ServerStore) async throws {
    try await store.save(
      TokenRecord(
        id: "t1", role: .worker, secretHash: "h1", createdMs: 10, expiresMs: 0, revoked: false, description: "w",
        labels: ["zone": "a"], allowedLabelKeys: ["role"]))
    try await store.save(
      TokenRecord(
        id: "t2", role: .operator, secretHash: "h2", createdMs: 11, expiresMs: 9, revoked: true, description: ""))
    try await store.save(StoreConformanceTests.node("n1"))
    try await store.save(StoreConformanceTests.node("n2", availability: .drain))
    try await store.save(StoreConformanceTests.node("gone"))
    _ = try await store.removeNode(id: "gone", nowMs: 77)
    _ = try await store.claimSecret("ca", value: "CA PEM")
    // An artifact larger than one chunk.
    var content = Data()
    for index in 0..<(1 << 20) + 4097 { content.append(UInt8(truncatingIfNeeded: index &* 31)) }
    let file = NSTemporaryDirectory() + "artifact-\(UUID().uuidString)"
    try content.write(to: URL(fileURLWithPath: file))
    let artifactDigest = String(repeating: "ab", count: 32)
    try await store.storeArtifactContent(digest: artifactDigest, file: file)
    try await store.save(
      ArtifactRecord(
        digest: artifactDigest, name: "echo", version: "1", platform: "linux", size: Int64(content.count), createdMs: 3)
    )
    try await store.apply(
      deployments: [
        DeploymentRecord(
          id: "d1", plugin: "echo", version: "1", artifactDigest: artifactDigest, artifactSize: Int64(content.count),
          selector: ["k": "v"], configJSON: "{\"x\":1}", maxFailures: 1, state: .paused(reason: "why"), createdMs: 4)
      ],
      tasks: [
        StoreConformanceTests.task("task1", node: "n1", state: .running, active: true),
        StoreConformanceTests.task("task2", node: "n2", state: .failed, active: false),
      ])
    _ = try await store.insert(StoreConformanceTests.job("j1", queuedMs: 1, labels: ["k": "v"]))
    _ = try await store.insert(StoreConformanceTests.job("j2", queuedMs: 2, runner: "n1", singleton: "s"))
    _ = try await store.claim(runner: "n1", byIdOnly: true, now: 50)
    _ = try await store.appendOutput(
      "j2",
      [
        JobOutputEvent(kind: 1, data: Data("hello\n".utf8), timestampMs: 51),
        JobOutputEvent(kind: 2, data: Data([0, 255, 10]), timestampMs: 52),
      ], limit: 1 << 20)
    try await store.setConfig([ConfigRecord(scope: 0, target: "", name: "A", value: "1")])
  }

  /// Everything a store holds, for comparing two.
  struct Contents: Equatable {
    var tokens: [TokenRecord]
    var nodes: [NodeRecord]
    var removed: [RemovedNode]
    var artifacts: [ArtifactRecord]
    var content: [Data?]
    var deployments: [DeploymentRecord]
    var tasks: [TaskRecord]
    var jobs: [JobRecord]
    var output: [[JobOutputRecord]]
    var config: [ConfigRecord]
    var ca: String?

    init(_ store: any ServerStore) async throws {
      tokens = try await store.tokens()
      nodes = try await store.nodes()
      removed = try await store.removedNodes()
      artifacts = try await store.artifacts()
      content = []
      for artifact in artifacts {
        content.append(try await store.artifactContent(digest: artifact.digest, offset: 0, count: 4 << 20))
      }
      deployments = try await store.deployments()
      tasks = try await store.tasks(node: nil, deployment: nil, activeOnly: false).sorted { $0.id < $1.id }
      jobs = try await store.jobs(states: [], runner: nil, since: 0, limit: 0)
      output = []
      for job in jobs { output.append(try await store.output(job.id, after: 0, limit: 1000)) }
      config = try await store.config(prefix: "")
      ca = try await store.secret("ca")
    }
  }

  @Test("SQLite → PostgreSQL → SQLite: tokens, nodes, the CA, artifacts, deployments, jobs and output are equal")
  func roundTrips() async throws {
    let root = try TestWorkspace()
    let source = try SQLiteServerStore(stateDirectory: root.root + "/a")
    try await Self.fill(source)
    let original = try await Contents(source)
    #expect(original.content.first??.count == (1 << 20) + 4097)
    #expect(original.output.last?.count == 2 || original.output.first?.count == 2)
    let first = root.root + "/first.snapshot"
    let records = try await ServerSnapshots.save(source, to: first)
    #expect(records > 10)

    try await PostgresCluster.with { cluster in
      let url = try await StoreFixture.url(cluster)
      let second = root.root + "/second.snapshot"
      try await PostgresServerStore.with(url: url, logger: StoreFixture.logger) { postgres in
        // Something already there is replaced, not merged.
        try await postgres.save(StoreConformanceTests.node("stale"))
        #expect(try await ServerSnapshots.restore(postgres, from: first) == records)
        let restored = try await Contents(postgres)
        #expect(restored == original)
        // The restored store works on: claims and output continue.
        let claimed = try await postgres.claim(runner: "n1", byIdOnly: false, now: 60)
        #expect(claimed?.job?.id == "j1")
        let next = try await postgres.appendOutput(
          "j2", [JobOutputEvent(kind: 1, data: Data("more".utf8), timestampMs: 61)], limit: 1 << 20)
        #expect(next == 3)
        try await ServerSnapshots.save(postgres, to: second)
      }
      let back = try SQLiteServerStore(stateDirectory: root.root + "/b")
      try await ServerSnapshots.restore(back, from: second)
      let again = try await Contents(back)
      #expect(again.tokens == original.tokens && again.nodes == original.nodes && again.ca == original.ca)
      #expect(again.content == original.content && again.deployments == original.deployments)
      #expect(again.output.flatMap { $0 }.count == original.output.flatMap { $0 }.count + 1)
      #expect(again.jobs.first { $0.id == "j1" }?.state == .waiting)
    }
  }

  @Test("corrupt, truncated, newer-format and hostile snapshots are refused, with nothing changed")
  func refused() async throws {
    let root = try TestWorkspace()
    let source = try SQLiteServerStore(stateDirectory: root.root + "/a")
    try await Self.fill(source)
    let good = root.root + "/good.snapshot"
    try await ServerSnapshots.save(source, to: good)
    let bytes = try Data(contentsOf: URL(fileURLWithPath: good))

    let target = try SQLiteServerStore(stateDirectory: root.root + "/b")
    try await target.save(StoreConformanceTests.node("keep"))
    let before = try await Contents(target)

    func refuses(_ name: String, _ data: Data, saying: String...) async throws {
      let path = root.root + "/" + name
      try data.write(to: URL(fileURLWithPath: path))
      let error = await #expect(throws: DeckhandError.self, "\(name)") {
        try await ServerSnapshots.restore(target, from: path)
      }
      let said = saying.contains { error?.message.contains($0) == true }
      #expect(said, "\(name): \(String(describing: error))")
      #expect(try await Contents(target) == before, "\(name) changed the store")
    }
    var corrupt = bytes
    corrupt[corrupt.count / 2] ^= 0x5A
    try await refuses("corrupt", corrupt, saying: "damaged", "corrupt", "truncated")
    try await refuses("truncated", bytes.prefix(bytes.count - 40), saying: "truncated")
    try await refuses("half", bytes.prefix(bytes.count / 3), saying: "truncated")
    try await refuses("empty", Data(), saying: "not a Deckhand snapshot")
    try await refuses("extra", bytes + Data([1, 0]), saying: "after the snapshot's trailer")

    // A newer format, with a valid checksum.
    let newer = root.root + "/newer.snapshot"
    try Self.write(newer, format: SnapshotFile.format + 1, records: [])
    let newerError = await #expect(throws: DeckhandError.self) {
      try await ServerSnapshots.restore(target, from: newer)
    }
    #expect(newerError?.message.contains("newer") == true, "\(String(describing: newerError))")

    // A well-formed snapshot whose artifact digest is a path.
    var chunk = Deckhand_Control_V1_SnapshotRecord()
    var hostileChunk = Deckhand_Control_V1_SnapshotArtifactChunk()
    hostileChunk.digest = "../../../../tmp/owned"
    hostileChunk.data = Data("x".utf8)
    chunk.artifactChunk = hostileChunk
    let hostile = root.root + "/hostile.snapshot"
    try Self.write(hostile, format: SnapshotFile.format, records: [chunk])
    let hostileError = await #expect(throws: DeckhandError.self) {
      try await ServerSnapshots.restore(target, from: hostile)
    }
    #expect(hostileError?.message.contains("not a SHA-256") == true, "\(String(describing: hostileError))")
    #expect(try await Contents(target) == before)
    #expect(!FileManager.default.fileExists(atPath: "/tmp/owned.tar.gz"))
  }

  /// A snapshot of `records` with a valid trailer and header `format`.
  static func write(_ path: String, format: UInt32, records: [Deckhand_Control_V1_SnapshotRecord]) throws {
    let writer = try SnapshotWriter(path: path, source: "test", format: format)
    for record in records { try writer.write(record) }
    try writer.finish()
  }
}
