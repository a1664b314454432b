internal import ArgumentParser
internal import CDeckhandSystem
internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandProtocol
internal import Dispatch
internal import Foundation
internal import GRPCCore

/// `deckhand exec NODE [-t] -- CMD ARGS`: a command on a node's agent, with
/// stdin, stdout and stderr streamed both ways.
struct ExecCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "exec",
    abstract: "Run a command on a node's agent interactively; exits with its exit code.",
    discussion: """
      Stdin is sent as it is read; stdout and stderr come back as the command writes them. With -t the \
      command gets a pseudo-terminal (window size changes follow yours) and this terminal is put in raw \
      mode while it runs.
      """)

  @OptionGroup var options: OperatorOptions
  @Flag(name: .customShort("t"), help: "Give the command a pseudo-terminal.") var tty = false
  @Option(name: .customLong("env"), help: "KEY=VALUE for the command; repeatable.") var environment: [String] = []
  @Argument(help: "The node (id or name).") var node: String
  @Argument(parsing: .captureForPassthrough, help: "The command, after --.") var command: [String] = []

  func run() async throws {
    // Before the "--", --help is a request for help, not the command
    // (passthrough parsing would take it as the first argument).
    if let first = command.first, first == "--help" || first == "-h" { throw CleanExit.helpRequest(self) }
    let argv = command.first == "--" ? Array(command.dropFirst()) : command
    guard !argv.isEmpty else { throw ValidationError("give the command after --, e.g. deckhand exec web-1 -- uptime") }
    var start = Deckhand_Server_V1_ExecStreamRequest()
    start.start.node = node
    start.start.argv = argv
    start.start.pty = tty
    start.start.env = try KeyValues.parse(environment, flag: "--env", emptyValues: false)
    let terminal = tty && isatty(0) == 1
    var rows: UInt16 = 24
    var columns: UInt16 = 80
    if tty { _ = deckhand_get_window(1, &rows, &columns) }
    start.start.window.rows = UInt32(rows)
    start.start.window.columns = UInt32(columns)
    if tty, let term = ProcessInfo.processInfo.environment["TERM"] { start.start.env["TERM"] = term }

    let (requests, sink) = AsyncStream.makeStream(of: Deckhand_Server_V1_ExecStreamRequest.self)
    sink.yield(start)
    // Stdin on a thread of its own: reading blocks.
    Thread.detachNewThread {
      var buffer = [UInt8](repeating: 0, count: 16384)
      while true {
        let count = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        var message = Deckhand_Server_V1_ExecStreamRequest()
        if count <= 0 {
          message.input.close = true
          sink.yield(message)
          return
        }
        message.input.data = Data(buffer[0..<count])
        sink.yield(message)
      }
    }
    var saved = termios()
    if terminal {
      tcgetattr(0, &saved)
      var raw = saved
      cfmakeraw(&raw)
      tcsetattr(0, TCSANOW, &raw)
    }
    defer { if terminal { tcsetattr(0, TCSANOW, &saved) } }
    // Window size changes, with -t only (a source that is never resumed
    // must not be released).
    var resize: (any DispatchSourceSignal)?
    if tty {
      signal(SIGWINCH, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: SIGWINCH)
      source.setEventHandler { @Sendable in
        var rows: UInt16 = 0
        var columns: UInt16 = 0
        guard deckhand_get_window(1, &rows, &columns) == 0 else { return }
        var message = Deckhand_Server_V1_ExecStreamRequest()
        message.window.rows = UInt32(rows)
        message.window.columns = UInt32(columns)
        sink.yield(message)
      }
      source.resume()
      resize = source
    }
    defer { resize?.cancel() }

    let exit = try await options.withJobs { jobs, metadata in
      try await jobs.execStream(
        metadata: metadata,
        requestProducer: { writer in for await message in requests { try await writer.write(message) } },
        onResponse: { response in
          var exit = Deckhand_Server_V1_ExecStreamResponse.Exit()
          exit.code = -1
          exit.error = "the stream ended without an exit code"
          for try await message in response.messages {
            switch message.event {
            case .output(let output):
              (output.stream == 2 ? FileHandle.standardError : FileHandle.standardOutput).write(output.data)
            case .exit(let ended):
              exit = ended
            default:
              break
            }
          }
          sink.finish()
          return exit
        })
    }
    if !exit.error.isEmpty {
      if terminal { tcsetattr(0, TCSANOW, &saved) }
      FileHandle.standardError.write(Data("deckhand: \(exit.error)\n".utf8))
    }
    if exit.code != 0 { throw ExitCode(exit.code < 0 ? 1 : exit.code) }
  }
}
