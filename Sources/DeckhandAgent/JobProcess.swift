internal import CDeckhandSystem
internal import DeckhandCore
internal import DeckhandPluginHost
internal import Foundation
internal import Synchronization

/// One exec job's process: spawned in a process group of its own, its
/// stdout and stderr read raw (chunks with timestamps, in order), and
/// ended with SIGTERM then SIGKILL to the whole group.
final class JobProcess: Sendable {
  /// A chunk of output: 1 stdout, 2 stderr.
  typealias Chunk = (stream: Int, data: [UInt8], timestampMs: Int64)

  /// What the process reads.
  enum Input: Sendable {
    /// /dev/null.
    case none
    /// A pipe: ``write(_:)`` and ``closeInput()``.
    case pipe
    /// A pseudo-terminal of this size for stdin, stdout and stderr (its
    /// output arrives as stdout).
    case terminal(rows: UInt16, columns: UInt16)
  }

  let pid: pid_t
  private let exit = Mutex<Int32?>(nil)
  /// Where ``write(_:)`` goes (-1: nowhere), and whether it is a terminal.
  private let input: Mutex<Int32>
  private let isTerminal: Bool

  private init(pid: pid_t, input: Int32, isTerminal: Bool) {
    self.pid = pid
    self.input = Mutex(input)
    self.isTerminal = isTerminal
  }

  /// Writes to the process's stdin (or terminal).
  func write(_ bytes: [UInt8]) {
    let fd = input.withLock { $0 }
    guard fd >= 0 else { return }
    var offset = 0
    while offset < bytes.count {
      let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
      if written < 0 && errno == EINTR { continue }
      if written <= 0 { return }
      offset += written
    }
  }

  /// Ends the process's input: closes the pipe, or sends end-of-file (^D)
  /// on a terminal.
  func closeInput() {
    if isTerminal {
      write([4])
      return
    }
    let fd = input.withLock { fd -> Int32 in
      defer { fd = -1 }
      return fd
    }
    if fd >= 0 { close(fd) }
  }

  /// A terminal's new window size.
  func resize(rows: UInt16, columns: UInt16) {
    guard isTerminal else { return }
    let fd = input.withLock { $0 }
    if fd >= 0 { _ = deckhand_set_window(fd, rows, columns) }
  }

  /// Starts `argv` (argv[0] looked up in PATH) with `environment` in
  /// `directory`; `onOutput` gets each chunk on a reader thread, and
  /// `onExit` the exit code (128 + signal for a signal) once both streams
  /// are drained.
  static func start(
    argv: [String], environment: [String: String], directory: String?, input: Input = .none,
    onOutput: @escaping @Sendable (Chunk) -> Void, onExit: @escaping @Sendable (Int32) -> Void
  ) throws -> JobProcess {
    guard let executable = resolve(argv[0], path: environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin") else {
      throw DeckhandError(.launchFailed, "command not found: \(argv[0])")
    }
    // [read end, write end] of stdout and stderr, and the child's stdin;
    // with a terminal, the replica is all three and the primary is read.
    var stdoutPipe: [Int32] = [-1, -1]
    var stderrPipe: [Int32] = [-1, -1]
    var childInput: Int32 = -1
    var ownInput: Int32 = -1
    var terminal = false
    switch input {
    case .terminal(let rows, let columns):
      var primary: Int32 = -1
      var replica: Int32 = -1
      let rc = deckhand_open_pty(&primary, &replica, rows, columns)
      guard rc == 0 else {
        throw DeckhandError(.launchFailed, "cannot open a pseudo-terminal: \(String(cString: strerror(rc)))")
      }
      stdoutPipe = [dup(primary), replica]
      stderrPipe = [-1, replica]
      childInput = replica
      ownInput = primary
      terminal = true
    case .pipe, .none:
      guard deckhand_pipe_cloexec(&stdoutPipe) == 0, deckhand_pipe_cloexec(&stderrPipe) == 0 else {
        throw DeckhandError(.launchFailed, "cannot create pipes: \(String(cString: strerror(errno)))")
      }
      if case .pipe = input {
        var inputPipe: [Int32] = [-1, -1]
        guard deckhand_pipe_cloexec(&inputPipe) == 0 else {
          throw DeckhandError(.launchFailed, "cannot create pipes: \(String(cString: strerror(errno)))")
        }
        childInput = inputPipe[0]
        ownInput = inputPipe[1]
      } else {
        childInput = open("/dev/null", O_RDONLY | O_CLOEXEC)
      }
    }
    var pid: pid_t = 0
    let environmentList = environment.map { "\($0.key)=\($0.value)" }
    let rc = withCStrings(argv) { argvPointers in
      withCStrings(environmentList) { envPointers in
        deckhand_spawn(
          executable, argvPointers, envPointers, childInput, stdoutPipe[1], stderrPipe[1], directory, &pid)
      }
    }
    close(childInput)
    if !terminal {
      close(stdoutPipe[1])
      close(stderrPipe[1])
    }
    guard rc == 0 else {
      close(stdoutPipe[0])
      if stderrPipe[0] >= 0 { close(stderrPipe[0]) }
      if ownInput >= 0 { close(ownInput) }
      throw DeckhandError(.launchFailed, "cannot start \(argv[0]): \(String(cString: strerror(rc)))")
    }
    let child = pid
    let process = JobProcess(pid: child, input: ownInput, isTerminal: terminal)
    let streams = terminal ? [(1, stdoutPipe[0])] : [(1, stdoutPipe[0]), (2, stderrPipe[0])]
    let readers = Mutex(streams.count)
    let finish: @Sendable () -> Void = {
      let last = readers.withLock { count -> Bool in
        count -= 1
        return count == 0
      }
      guard last else { return }
      var status: Int32 = 0
      while waitpid(child, &status, 0) < 0 && errno == EINTR {}
      var code: Int32 = 0
      let signalled = deckhand_decode_wait_status(status, &code)
      let exitCode = signalled == 2 ? 128 + code : code
      process.exit.withLock { $0 = exitCode }
      let fd = process.input.withLock { fd -> Int32 in
        defer { fd = -1 }
        return fd
      }
      if fd >= 0 { close(fd) }
      onExit(exitCode)
    }
    for (stream, fd) in streams {
      Thread.detachNewThread {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
          let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
          if count < 0 && errno == EINTR { continue }
          if count <= 0 { break }
          onOutput((stream, Array(buffer[0..<count]), Int64(Date().timeIntervalSince1970 * 1000)))
        }
        close(fd)
        finish()
      }
    }
    return process
  }

  /// Sends `signal` to the whole process group.
  func signal(_ signal: Int32) {
    guard exit.withLock({ $0 == nil }) else { return }
    kill(-pid, signal)
  }

  var exitCode: Int32? { exit.withLock { $0 } }

  static func resolve(_ command: String, path: String) -> String? {
    if command.contains("/") { return access(command, X_OK) == 0 ? command : nil }
    for folder in path.split(separator: ":") {
      let candidate = "\(folder)/\(command)"
      if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
  }
}
