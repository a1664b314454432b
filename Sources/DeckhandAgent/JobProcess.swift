internal import CDeckhandSystem
internal import DeckhandCore
internal import Foundation
internal import Synchronization

/// One exec job's process: spawned in a process group of its own, its
/// stdout and stderr read raw (chunks with timestamps, in order), and
/// ended with SIGTERM then SIGKILL to the whole group.
final class JobProcess: Sendable {
  /// A chunk of output: 1 stdout, 2 stderr.
  typealias Chunk = (stream: Int, data: [UInt8], timestampMs: Int64)

  let pid: pid_t
  private let exit = Mutex<Int32?>(nil)

  private init(pid: pid_t) { self.pid = pid }

  /// Starts `argv` (argv[0] looked up in PATH) with `environment` in
  /// `directory`; `onOutput` gets each chunk on a reader thread, and
  /// `onExit` the exit code (128 + signal for a signal) once both streams
  /// are drained.
  static func start(
    argv: [String], environment: [String: String], directory: String?,
    onOutput: @escaping @Sendable (Chunk) -> Void, onExit: @escaping @Sendable (Int32) -> Void
  ) throws -> JobProcess {
    guard let executable = resolve(argv[0], path: environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin") else {
      throw DeckhandError(.launchFailed, "command not found: \(argv[0])")
    }
    var stdoutPipe: [Int32] = [-1, -1]
    var stderrPipe: [Int32] = [-1, -1]
    guard deckhand_pipe_cloexec(&stdoutPipe) == 0, deckhand_pipe_cloexec(&stderrPipe) == 0 else {
      throw DeckhandError(.launchFailed, "cannot create pipes: \(String(cString: strerror(errno)))")
    }
    let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
    defer { close(devNull) }
    var pid: pid_t = 0
    let environmentList = environment.map { "\($0.key)=\($0.value)" }
    let rc = withCStrings(argv) { argvPointers in
      withCStrings(environmentList) { envPointers in
        deckhand_spawn(
          executable, argvPointers, envPointers, devNull, stdoutPipe[1], stderrPipe[1], directory, &pid)
      }
    }
    close(stdoutPipe[1])
    close(stderrPipe[1])
    guard rc == 0 else {
      close(stdoutPipe[0])
      close(stderrPipe[0])
      throw DeckhandError(.launchFailed, "cannot start \(argv[0]): \(String(cString: strerror(rc)))")
    }
    let child = pid
    let process = JobProcess(pid: child)
    let readers = Mutex(2)
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
      onExit(exitCode)
    }
    for (stream, fd) in [(1, stdoutPipe[0]), (2, stderrPipe[0])] {
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

  private static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
  }
}
