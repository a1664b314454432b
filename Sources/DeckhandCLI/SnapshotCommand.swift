internal import ArgumentParser
internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandProtocol
internal import DeckhandRuntime
internal import DeckhandServer
internal import Foundation
internal import GRPCCore
internal import Logging

/// `deckhand snapshot save|restore`: a running server's whole state, to a
/// file and back.
struct SnapshotCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "snapshot",
    abstract: "Back up a running server's state to a file, or replace it with a file's.",
    discussion: """
      A snapshot holds everything the server keeps: tokens, nodes and their credentials, the CA, artifacts \
      with their content, deployments, tasks, jobs with their output, config variables. It is consistent \
      (one transaction) and checked by a SHA-256 trailer. A snapshot from SQLite restores into PostgreSQL \
      and back: to move a server, stop it, `deckhand server restore FILE --database-url URL`, and start \
      the new one.
      """,
    subcommands: [Save.self, Restore.self])

  struct Save: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write the server's state to FILE (0600).")
    @OptionGroup var options: OperatorOptions
    @Argument(help: "The snapshot file to write.") var file: String

    func run() async throws {
      let path = HostOptions.absolute(file)
      let partial = "\(path).partial"
      guard FileManager.default.createFile(atPath: partial, contents: nil, attributes: [.posixPermissions: 0o600]),
        let handle = FileHandle(forWritingAtPath: partial)
      else {
        FileHandle.standardError.write(Data("deckhand: cannot write \(partial)\n".utf8))
        throw ExitCode(2)
      }
      let bytes: Int64
      do {
        bytes = try await options.withControl { control, metadata in
          try await control.saveSnapshot(Deckhand_Control_V1_SaveSnapshotRequest(), metadata: metadata) { response in
            var bytes: Int64 = 0
            for try await chunk in response.messages {
              try handle.write(contentsOf: chunk.data)
              bytes += Int64(chunk.data.count)
            }
            return bytes
          }
        }
        try handle.synchronize()
        try handle.close()
        // Only a whole snapshot gets the name asked for.
        _ = try SnapshotCheck.verify(partial)
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: partial, toPath: path)
      } catch {
        try? handle.close()
        try? FileManager.default.removeItem(atPath: partial)
        throw error
      }
      print("saved \(path) (\(ByteText.format(bytes)))")
    }
  }

  struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Replace the server's state with FILE's.",
      discussion: """
        The file is checked here and again by the server before anything changes. The running server must \
        hold the snapshot's CA (its agents trust it); to restore another server's snapshot, use `deckhand \
        server restore` offline.
        """)
    @OptionGroup var options: OperatorOptions
    @Argument(help: "The snapshot file.") var file: String

    func run() async throws {
      let path = HostOptions.absolute(file)
      _ = try SnapshotCheck.verify(path)
      guard let handle = FileHandle(forReadingAtPath: path) else {
        FileHandle.standardError.write(Data("deckhand: cannot read \(path)\n".utf8))
        throw ExitCode(2)
      }
      defer { try? handle.close() }
      let response = try await options.withControl { control, metadata in
        try await control.restoreSnapshot(metadata: metadata) { writer in
          while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty {
            var chunk = Deckhand_Control_V1_SnapshotChunk()
            chunk.data = data
            try await writer.write(chunk)
          }
        }
      }
      print("restored \(response.records) records from \(path)")
    }
  }
}

/// Checks a snapshot file before it is sent or kept.
enum SnapshotCheck {
  /// The snapshot's summary; a damaged, truncated or newer one ends the
  /// command with its reason (exit 2).
  static func verify(_ path: String) throws -> SnapshotReader.Summary {
    do {
      return try SnapshotReader.verify(path: path)
    } catch let error as DeckhandError {
      FileHandle.standardError.write(Data("deckhand: \(error.message)\n".utf8))
      throw ExitCode(2)
    }
  }
}

/// `deckhand server restore FILE`: a snapshot into a stopped server's
/// store (its state directory, or its PostgreSQL database).
struct ServerRestoreCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "restore",
    abstract: "Replace a stopped server's state with a snapshot's (offline).",
    discussion: """
      Writes into the SQLite store of --state-dir, or into the PostgreSQL database of --database-url \
      (DECKHAND_DATABASE_URL), after checking the whole snapshot: a bad, truncated or newer snapshot \
      changes nothing. The CA, tokens and node credentials come from the snapshot, so agents stay joined. \
      Stop every server on that state first.
      """)
  @Argument(help: "The snapshot file.") var file: String
  @Option(help: "The server's state directory (SQLite).") var stateDir: String?
  @Option(help: "The server's database, postgres://… (instead of --state-dir).") var databaseUrl: String?

  func run() async throws {
    var logger = Logger(label: "deckhand.server")
    logger.logLevel = .warning
    let path = HostOptions.absolute(file)
    let summary = try SnapshotCheck.verify(path)
    do {
      let environment = ProcessInfo.processInfo.environment
      let records: UInt64
      if let url = databaseUrl ?? environment["DECKHAND_DATABASE_URL"].flatMap({ $0.isEmpty ? nil : $0 }) {
        let database = try DatabaseURL(parsing: url)
        records = try await PostgresServerStore.with(url: database, logger: logger) { store in
          try await ServerSnapshots.restore(store, from: path)
        }
      } else {
        let state = stateDir.map(HostOptions.absolute) ?? ServeCommand.defaultStateDirectory()
        if let serving = FileManager.default.contents(atPath: ControlPlaneServer.servingFile(state)),
          let running = try? JSONDecoder().decode(ControlPlaneServer.Serving.self, from: serving),
          kill(running.pid, 0) == 0
        {
          throw DeckhandError(
            .configurationInvalid,
            "a server (pid \(running.pid)) is serving from \(state); stop it first, or use `deckhand snapshot restore`")
        }
        try StateDirectory.secure(state)
        records = try await ServerSnapshots.restore(try SQLiteServerStore(stateDirectory: state), from: path)
      }
      print(
        "restored \(records) records from \(path) (taken from \(summary.header.source) by deckhand \(summary.header.deckhandVersion))"
      )
    } catch let error as DeckhandError {
      FileHandle.standardError.write(Data("deckhand: \(error.message)\n".utf8))
      throw ExitCode(1)
    }
  }
}
