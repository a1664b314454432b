internal import CDeckhandSystem
package import DeckhandCore
internal import Foundation

#if canImport(Glibc)
  internal import Glibc
#endif

/// A plugin process: spawned as the leader of its own process group, its
/// stdout and stderr read line by line, and reaped by a monitor thread so
/// that no zombie is left.
///
/// The monitor thread polls the process's pidfd and both pipes; it ends when
/// the process has exited and both pipes are closed.
package final class ChildProcess: Sendable {
  /// The process id, which is also its process group id.
  package let pid: Int32
  /// The last lines the process wrote to stdout.
  package let stdoutTail = LogTail()
  /// The last lines the process wrote to stderr.
  package let stderrTail = LogTail()
  /// Lines from stdout, for the go-plugin handshake. Keeps the newest 256.
  package let stdoutLines: AsyncStream<String>

  private let exitValue = OnceValue<ProcessExit>()

  /// Which stream a line came from.
  package enum Stream: String, Sendable {
    case stdout, stderr
  }

  private init(pid: Int32, stdoutLines: AsyncStream<String>) {
    self.pid = pid
    self.stdoutLines = stdoutLines
  }

  /// Spawns `executable` in a new process group.
  ///
  /// - Parameters:
  ///   - executable: An absolute path.
  ///   - arguments: The arguments after argv[0].
  ///   - environment: The whole environment.
  ///   - workingDirectory: Where it starts.
  ///   - output: Where stdout and stderr go.
  ///   - isolation: Namespaces, user and privileges (fork and execve
  ///     instead of posix_spawn).
  ///   - onLine: Called on the monitor thread with each output line.
  package static func spawn(
    executable: String,
    arguments: [String],
    environment: [String: String],
    workingDirectory: String?,
    output: Output = .pipes,
    isolation: Isolation? = nil,
    onLine: (@Sendable (Stream, String) -> Void)? = nil
  ) throws -> ChildProcess {
    // [read end, write end] of each stream: a pipe, or a log file opened
    // twice (appending for the child, at its end for the monitor).
    var stdoutPipe: [Int32] = [-1, -1]
    var stderrPipe: [Int32] = [-1, -1]
    switch output {
    case .pipes:
      guard deckhand_pipe_cloexec(&stdoutPipe) == 0, deckhand_pipe_cloexec(&stderrPipe) == 0 else {
        throw DeckhandError(
          .launchFailed, "could not create pipes for \(executable): \(String(cString: strerror(errno)))")
      }
    case .files(let stdoutPath, let stderrPath):
      rotate(stdoutPath)
      rotate(stderrPath)
      stdoutPipe = try openLog(stdoutPath)
      do {
        stderrPipe = try openLog(stderrPath)
      } catch {
        close(stdoutPipe[0])
        close(stdoutPipe[1])
        throw error
      }
    }
    let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
    defer {
      close(stdoutPipe[1])
      close(stderrPipe[1])
      if devNull >= 0 { close(devNull) }
    }
    let argv = [executable] + arguments
    let envp = environment.map { "\($0.key)=\($0.value)" }
    var pid: pid_t = 0
    var failedStep: Int32 = 0
    let rc = withCStrings(argv) { argvPointers in
      withCStrings(envp) { envPointers in
        // ETXTBSY: the entrypoint was just written and a writer's descriptor
        // is still open somewhere (a freshly installed binary); it passes
        // quickly.
        var rc: Int32 = 0
        for attempt in 0..<10 {
          if attempt > 0 { usleep(10_000) }
          if let isolation {
            rc = isolation.spawn(
              executable, argvPointers, envPointers, devNull, stdoutPipe[1], stderrPipe[1], workingDirectory,
              &failedStep, &pid)
          } else {
            rc = deckhand_spawn(
              executable, argvPointers, envPointers, devNull, stdoutPipe[1], stderrPipe[1], workingDirectory, &pid)
          }
          if rc != ETXTBSY { break }
        }
        return rc
      }
    }
    guard rc == 0 else {
      close(stdoutPipe[0])
      close(stderrPipe[0])
      let reason = String(cString: strerror(rc))
      if failedStep != 0 && failedStep != Int32(DECKHAND_STEP_EXEC) {
        throw DeckhandError(
          .isolationUnavailable,
          "could not isolate \(executable): \(Isolation.describe(step: failedStep)) failed: \(reason)")
      }
      throw DeckhandError(
        .launchFailed, "could not start \(executable): \(reason); check that it exists and is executable")
    }
    let pidfd = deckhand_pidfd_open(pid)
    let (lines, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(256))
    let process = ChildProcess(pid: pid, stdoutLines: lines)
    let logPaths: [Int32: String] =
      if case .files(let stdoutPath, let stderrPath) = output {
        [stdoutPipe[0]: stdoutPath, stderrPipe[0]: stderrPath]
      } else {
        [:]
      }
    let monitor = Monitor(
      process: process, pidfd: pidfd, isChild: true, tailsFiles: output != .pipes, logPaths: logPaths,
      stdoutFD: stdoutPipe[0], stderrFD: stderrPipe[0], stdoutContinuation: continuation, onLine: onLine)
    Thread.detachNewThread { monitor.run() }
    return process
  }

  /// What an isolated plugin gets: resolved ids, not names.
  package struct Isolation: Hashable, Sendable {
    package var newNetwork = false
    package var newPID = false
    package var newMount = false
    package var readonlyPaths: [String] = []
    package var uid: Int32 = -1
    package var gid: Int32 = -1
    package var noNewPrivileges = false

    package init() {}

    func spawn(
      _ executable: String, _ argv: [UnsafeMutablePointer<CChar>?], _ envp: [UnsafeMutablePointer<CChar>?],
      _ stdin: Int32, _ stdout: Int32, _ stderr: Int32, _ cwd: String?, _ failedStep: inout Int32,
      _ pid: inout pid_t
    ) -> Int32 {
      withCStrings(readonlyPaths) { paths in
        paths.withUnsafeBufferPointer { buffer in
          buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { list in
            var settings = deckhand_isolation(
              new_network: newNetwork ? 1 : 0, new_pid: newPID ? 1 : 0, new_mount: newMount ? 1 : 0,
              readonly_paths: list, uid: uid, gid: gid, no_new_privileges: noNewPrivileges ? 1 : 0,
              cgroup_procs_fd: -1)
            return deckhand_spawn_isolated(
              executable, argv, envp, stdin, stdout, stderr, cwd, &settings, &failedStep, &pid)
          }
        }
      }
    }

    static func describe(step: Int32) -> String {
      switch Int(step) {
      case Int(DECKHAND_STEP_NETWORK): "a new network namespace (isolation.network \"none\")"
      case Int(DECKHAND_STEP_PID): "a new pid namespace (isolation.pid_namespace)"
      case Int(DECKHAND_STEP_MOUNT): "a private mount namespace with read-only paths (isolation.mount_namespace)"
      case Int(DECKHAND_STEP_USER): "switching user or group (isolation.user, isolation.group)"
      default: "preparing the process"
      }
    }
  }

  /// Where a plugin's stdout and stderr go.
  package enum Output: Hashable, Sendable {
    /// Pipes the host reads. The plugin dies of SIGPIPE if it writes
    /// after the host is gone, so only for plugins that end with the host.
    case pipes
    /// Log files the plugin appends to, which the host tails: the plugin
    /// can outlive the host.
    case files(stdout: String, stderr: String)
  }

  /// Takes over a plugin process that a previous host started and left
  /// running: watches its pidfd for the exit (whose status it cannot learn,
  /// not being the parent) and tails its log files. Nil if it is gone.
  package static func attach(pid: Int32, stdoutLog: String, stderrLog: String) -> ChildProcess? {
    let pidfd = deckhand_pidfd_open(pid)
    guard pidfd >= 0 || kill(pid, 0) == 0 else { return nil }
    let (lines, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(256))
    let process = ChildProcess(pid: pid, stdoutLines: lines)
    for line in LaunchedPlugin.tail(ofFile: stdoutLog, lines: 20) ?? [] { process.stdoutTail.append(line) }
    for line in LaunchedPlugin.tail(ofFile: stderrLog, lines: 20) ?? [] { process.stderrTail.append(line) }
    // The plugin still appends to its logs; read them from their end on.
    let stdoutFD = openAtEnd(stdoutLog)
    let stderrFD = openAtEnd(stderrLog)
    let monitor = Monitor(
      process: process, pidfd: pidfd, isChild: false, tailsFiles: true,
      logPaths: [stdoutFD: stdoutLog, stderrFD: stderrLog], stdoutFD: stdoutFD,
      stderrFD: stderrFD, stdoutContinuation: continuation, onLine: nil)
    Thread.detachNewThread { monitor.run() }
    return process
  }

  /// The size past which a plugin's log file is moved to `PATH.1` (one
  /// old file kept) when the plugin is launched again.
  package static let logRotationSize: Int64 = 8 << 20

  /// The size past which a running plugin's log file is cut to nothing
  /// (with a line saying so): a plugin that logs without end must not fill
  /// the agent's disk. A running process's file cannot be renamed away
  /// (it keeps writing to it) nor copied (that needs the space); it
  /// appends, so after the cut its next line starts the file again.
  package static let logCutSize: Int64 = 32 << 20

  private static func rotate(_ path: String) {
    var info = stat()
    guard stat(path, &info) == 0, Int64(info.st_size) > logRotationSize else { return }
    rename(path, path + ".1")
  }

  /// Opens a log file: [read descriptor at its current end, append
  /// descriptor for the child].
  private static func openLog(_ path: String) throws -> [Int32] {
    let writer = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
    guard writer >= 0 else {
      throw DeckhandError(
        .launchFailed, "could not open the log file \(path): \(String(cString: strerror(errno)))")
    }
    let reader = openAtEnd(path)
    guard reader >= 0 else {
      let reason = String(cString: strerror(errno))
      close(writer)
      throw DeckhandError(.launchFailed, "could not read the log file \(path): \(reason)")
    }
    return [reader, writer]
  }

  /// A read descriptor at the current end of `path`, or -1.
  private static func openAtEnd(_ path: String) -> Int32 {
    let reader = open(path, O_RDONLY | O_CLOEXEC)
    if reader >= 0 { lseek(reader, 0, SEEK_END) }
    return reader
  }

  /// How the process ended, or nil while it runs.
  package var exit: ProcessExit? { exitValue.value }

  /// Waits until the process has exited and been reaped, or the task is
  /// cancelled (nil).
  package func waitForExit() async -> ProcessExit? {
    await exitValue.wait()
  }

  /// Waits for the exit at most `timeout`; nil if the process still runs.
  package func waitForExit(timeout: Duration) async -> ProcessExit? {
    if let exit { return exit }
    return await firstResult(within: timeout) { await self.waitForExit() } ?? self.exit
  }

  /// Sends `signal` to the whole process group.
  package func signalGroup(_ signal: Int32) {
    _ = kill(-pid, signal)
  }

  /// Kills the whole process group with SIGKILL and waits for the leader to
  /// be reaped.
  ///
  /// Descendants that left the group (a child that called setsid, as
  /// Foundation's `Process` does) are found through /proc and killed too.
  @discardableResult
  package func killGroupAndWait() async -> ProcessExit? {
    let escaped = exit == nil ? descendants() : []
    signalGroup(SIGKILL)
    if exit == nil { _ = kill(pid, SIGKILL) }
    for descendant in escaped { _ = kill(descendant, SIGKILL) }
    return await waitForExit()
  }

  /// The pids of every process descended from this one.
  package func descendants() -> [Int32] {
    var buffer = [pid_t](repeating: 0, count: 4096)
    let count = deckhand_descendants(pid, &buffer, Int32(buffer.count))
    return Array(buffer.prefix(Int(count)))
  }

  fileprivate func markExited(_ exit: ProcessExit) {
    exitValue.set(exit)
  }
}

/// The monitor thread's work: read lines, reap the process.
private final class Monitor: @unchecked Sendable {
  // @unchecked: every field is either immutable or touched only by the one
  // monitor thread that runs `run()`.
  let process: ChildProcess
  let pidfd: Int32
  /// Whether the process is this host's child, to be reaped with waitpid.
  let isChild: Bool
  /// Whether stdout and stderr are log files, read as they grow, rather
  /// than pipes.
  let tailsFiles: Bool
  let stdoutFD: Int32
  let stderrFD: Int32
  /// The log file each tailed descriptor reads, for the cut at
  /// ``ChildProcess/logCutSize``.
  let logPaths: [Int32: String]
  let stdoutContinuation: AsyncStream<String>.Continuation
  let onLine: (@Sendable (ChildProcess.Stream, String) -> Void)?
  var buffers: [Int32: [UInt8]] = [:]
  var chunk = [UInt8](repeating: 0, count: 16 * 1024)

  init(
    process: ChildProcess, pidfd: Int32, isChild: Bool, tailsFiles: Bool, logPaths: [Int32: String] = [:],
    stdoutFD: Int32, stderrFD: Int32, stdoutContinuation: AsyncStream<String>.Continuation,
    onLine: (@Sendable (ChildProcess.Stream, String) -> Void)?
  ) {
    self.process = process
    self.logPaths = logPaths
    self.pidfd = pidfd
    self.isChild = isChild
    self.tailsFiles = tailsFiles
    self.stdoutFD = stdoutFD
    self.stderrFD = stderrFD
    self.stdoutContinuation = stdoutContinuation
    self.onLine = onLine
  }

  func run() {
    var open = Set([stdoutFD, stderrFD].filter { $0 >= 0 })
    var reaped = false
    // Log files are always "readable" to poll(2): they are read every tick
    // instead, 1 ms at first (a go-plugin handshake is on the launch's
    // path), backing off while nothing new arrives.
    let started = ContinuousClock.now
    var tick: Int32 = 1
    while !reaped || (!tailsFiles && !open.isEmpty) {
      var fds: [pollfd] = tailsFiles ? [] : open.sorted().map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
      if !reaped && pidfd >= 0 { fds.append(pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)) }
      let timeout: Int32 =
        if tailsFiles { tick } else if reaped { 1000 } else if pidfd < 0 { 50 } else { -1 }
      let ready = poll(&fds, nfds_t(fds.count), timeout)
      if ready < 0 && errno != EINTR { break }
      if tailsFiles {
        var readAny = false
        for fd in open where drain(fd) { readAny = true }
        let cap: Int32 = started.duration(to: .now) < .seconds(10) ? 50 : 500
        tick = readAny ? 1 : min(tick * 2, cap)
      } else {
        for entry in fds where entry.revents != 0 && entry.fd != pidfd {
          let count = chunk.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
          if count > 0 {
            consume(fd: entry.fd, bytes: chunk[0..<count])
          } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
            flush(fd: entry.fd)
            close(entry.fd)
            open.remove(entry.fd)
            if entry.fd == stdoutFD { stdoutContinuation.finish() }
          }
        }
      }
      if !reaped { reaped = reap() }
    }
    if tailsFiles {
      for fd in open {
        _ = drain(fd)
        flush(fd: fd)
        close(fd)
      }
    }
    stdoutContinuation.finish()
  }

  /// Reads what a log file has gained; whether there was anything. A file
  /// read past ``ChildProcess/logCutSize`` is cut.
  private func drain(_ fd: Int32) -> Bool {
    var readAny = false
    while true {
      let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      guard count > 0 else { break }
      readAny = true
      consume(fd: fd, bytes: chunk[0..<count])
    }
    if readAny, let path = logPaths[fd], lseek(fd, 0, SEEK_CUR) > ChildProcess.logCutSize, truncate(path, 0) == 0 {
      lseek(fd, 0, SEEK_SET)
      let note = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
      if note >= 0 {
        let line =
          "[deckhand] log cut: it reached \(ByteText.format(ChildProcess.logCutSize)); earlier lines were dropped\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(note, $0.baseAddress, $0.count - 1) }
        close(note)
      }
    }
    return readAny
  }

  /// Whether the process is gone (and, for a child, reaped).
  private func reap() -> Bool {
    if !isChild {
      let gone: Bool
      if pidfd >= 0 {
        var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        gone = poll(&entry, 1, 0) > 0
      } else {
        gone = kill(process.pid, 0) != 0 && errno == ESRCH
      }
      if gone {
        process.markExited(.unknown)
        if pidfd >= 0 { close(pidfd) }
      }
      return gone
    }
    var status: Int32 = 0
    let result = waitpid(process.pid, &status, WNOHANG)
    if result == process.pid {
      var code: Int32 = 0
      let kind = deckhand_decode_wait_status(status, &code)
      process.markExited(kind == 2 ? .signaled(signal: code) : .exited(code: code))
    } else if result < 0 && errno == ECHILD {
      process.markExited(.unknown)
    } else {
      return false
    }
    if pidfd >= 0 { close(pidfd) }
    return true
  }

  private func consume(fd: Int32, bytes: ArraySlice<UInt8>) {
    var buffer = buffers[fd, default: []]
    buffer.append(contentsOf: bytes)
    while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
      emit(fd: fd, String(decoding: buffer[..<newline], as: UTF8.self))
      buffer.removeSubrange(...newline)
    }
    if buffer.count > 16 * 1024 {
      emit(fd: fd, String(decoding: buffer, as: UTF8.self))
      buffer.removeAll()
    }
    buffers[fd] = buffer
  }

  private func flush(fd: Int32) {
    if let rest = buffers[fd], !rest.isEmpty {
      emit(fd: fd, String(decoding: rest, as: UTF8.self))
    }
    buffers[fd] = nil
  }

  private func emit(fd: Int32, _ rawLine: String) {
    let line = rawLine.hasSuffix("\r") ? String(rawLine.dropLast()) : rawLine
    if fd == stdoutFD {
      process.stdoutTail.append(line)
      stdoutContinuation.yield(line)
      onLine?(.stdout, line)
    } else {
      process.stderrTail.append(line)
      onLine?(.stderr, line)
    }
  }
}

/// Calls `body` with a NULL-terminated array of C strings.
/// `strings` as a NULL-terminated array of C strings (argv, envp) for the
/// duration of `body`.
package func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
  let pointers = strings.map { strdup($0) } + [nil]
  defer { for pointer in pointers { free(pointer) } }
  return body(pointers)
}
