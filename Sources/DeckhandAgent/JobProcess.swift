internal import CDeckhandSystem
internal import DeckhandCore
internal import DeckhandPluginHost
internal import DeckhandRuntime
internal import Dispatch
internal import Foundation
internal import Synchronization

/// One exec job's (or interactive exec's) process: spawned in a process
/// group of its own, marked in its environment and, where the machine has
/// one, in a cgroup of its own (``ProcessSweep``), its stdout and stderr
/// read raw (chunks with timestamps, in order).
///
/// The job ends when its command exits: output is drained for a short
/// grace (``drainGrace``), then whatever the command left running (a
/// background child that still holds stdout, one that called setsid) is
/// killed, and `onExit` gets the command's exit code. Signals go to every
/// process the job started, not only its group; none outlives the job.
final class JobProcess: Sendable {
  /// A chunk of output: 1 stdout, 2 stderr.
  typealias Chunk = (stream: Int, data: [UInt8], timestampMs: Int64)

  /// How long output is still read after the command exited, for children
  /// that hold stdout, before they are killed.
  static let drainGrace: Duration = .seconds(1)
  /// The environment key that marks every process of one job.
  static let instanceKey = "DECKHAND_JOB_INSTANCE"
  /// The environment key that marks every job process of one agent (its
  /// state directory), so that the next agent ends what a killed one left.
  static let ownerKey = "DECKHAND_JOB_OWNER"

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
  /// Everything the job started.
  let sweep: ProcessSweep
  private let exit = Mutex<Int32?>(nil)
  /// Set when readers must stop although their pipe is still open.
  private let abandoned = Atomic<Bool>(false)
  /// Where ``write(_:)`` goes (-1: nowhere), and whether it is a terminal.
  private let input: Mutex<Int32>
  private let isTerminal: Bool

  private init(pid: pid_t, sweep: ProcessSweep, input: Int32, isTerminal: Bool) {
    self.pid = pid
    self.sweep = sweep
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
  /// `directory`, marked as one of `owner`'s jobs (``Owner``); `onOutput`
  /// gets each chunk on a reader thread, and `onExit` the exit code (128 +
  /// signal for a signal) once the output is drained and nothing the
  /// command started runs any more.
  static func start(
    argv: [String], environment: [String: String], directory: String?, input: Input = .none, owner: Owner,
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
    let instance = String(UInt64.random(in: 0...UInt64.max), radix: 16)
    var marked = environment
    marked[Self.instanceKey] = instance
    marked[Self.ownerKey] = owner.key
    let environmentList = marked.map { "\($0.key)=\($0.value)" }
    // With a cgroup, the child joins it before it runs (fork, then execve):
    // with posix_spawn, a command could fork before the agent moved it.
    let cgroup = ProcessSweep.trackingGroup(owner.cgroup(instance))
    let procs = cgroup.map { open("\($0)/cgroup.procs", O_WRONLY | O_CLOEXEC) } ?? -1
    defer { if procs >= 0 { close(procs) } }
    let rc = withCStrings(argv) { argvPointers in
      withCStrings(environmentList) { envPointers in
        guard procs >= 0 else {
          return deckhand_spawn(
            executable, argvPointers, envPointers, childInput, stdoutPipe[1], stderrPipe[1], directory, &pid)
        }
        var settings = deckhand_isolation(
          new_network: 0, new_pid: 0, new_mount: 0, readonly_paths: nil, uid: -1, gid: -1, no_new_privileges: 0,
          cgroup_procs_fd: procs)
        var step: Int32 = 0
        return deckhand_spawn_isolated(
          executable, argvPointers, envPointers, childInput, stdoutPipe[1], stderrPipe[1], directory, &settings,
          &step, &pid)
      }
    }
    close(childInput)
    if !terminal {
      close(stdoutPipe[1])
      close(stderrPipe[1])
    }
    guard rc == 0 else {
      if let cgroup { rmdir(cgroup) }
      close(stdoutPipe[0])
      if stderrPipe[0] >= 0 { close(stderrPipe[0]) }
      if ownInput >= 0 { close(ownInput) }
      throw DeckhandError(.launchFailed, "cannot start \(argv[0]): \(String(cString: strerror(rc)))")
    }
    var sweep = ProcessSweep(marker: "\(Self.instanceKey)=\(instance)", cgroup: procs >= 0 ? cgroup : nil)
    sweep.processGroup = pid
    let process = JobProcess(pid: pid, sweep: sweep, input: ownInput, isTerminal: terminal)
    let streams = terminal ? [(1, stdoutPipe[0])] : [(1, stdoutPipe[0]), (2, stderrPipe[0])]
    let readers = DispatchGroup()
    for (stream, fd) in streams {
      readers.enter()
      Thread.detachNewThread {
        defer { readers.leave() }
        process.read(fd, stream: stream, onOutput: onOutput)
        close(fd)
      }
    }
    Thread.detachNewThread { process.reap(readers: readers, onExit: onExit) }
    return process
  }

  /// Reads `fd` until end of file, or until the reader is abandoned (a
  /// process that escaped every sweep still holds the other end).
  private func read(_ fd: Int32, stream: Int, onOutput: @Sendable (Chunk) -> Void) {
    var buffer = [UInt8](repeating: 0, count: 65536)
    var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    while !abandoned.load(ordering: .relaxed) {
      let ready = poll(&poller, 1, 250)
      if ready < 0 && errno == EINTR { continue }
      if ready == 0 { continue }
      let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
      if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
      if count <= 0 { return }
      onOutput((stream, Array(buffer[0..<count]), Int64(Date().timeIntervalSince1970 * 1000)))
    }
  }

  /// The waiter thread: reaps the command, lets the output drain for
  /// ``drainGrace``, kills what the command left, and reports the exit.
  private func reap(readers: DispatchGroup, onExit: @Sendable (Int32) -> Void) {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    var code: Int32 = 0
    let signalled = deckhand_decode_wait_status(status, &code)
    let exitCode = signalled == 2 ? 128 + code : code
    exit.withLock { $0 = exitCode }
    _ = readers.wait(timeout: .now() + .milliseconds(Int(Self.drainGrace / .milliseconds(1))))
    sweep.killAll()
    if readers.wait(timeout: .now() + .seconds(2)) == .timedOut {
      abandoned.store(true, ordering: .relaxed)
      readers.wait()
    }
    let fd = input.withLock { fd -> Int32 in
      defer { fd = -1 }
      return fd
    }
    if fd >= 0 { close(fd) }
    onExit(exitCode)
  }

  /// Sends `signal` to every process the job started (its group, and
  /// those that left it), off the event loops: finding them reads /proc.
  func signal(_ signal: Int32) async {
    let sweep = sweep
    _ = try? await BlockingWork.run { sweep.signal(signal) }
  }

  /// SIGTERM to everything the job started, then SIGKILL if the command
  /// still runs after `grace`.
  func terminate(within grace: Duration) async {
    await signal(SIGTERM)
    let deadline = ContinuousClock.now + grace
    while exitCode == nil && ContinuousClock.now < deadline && !Task.isCancelled {
      try? await Task.sleep(for: .milliseconds(50))
    }
    if exitCode == nil && !Task.isCancelled { await signal(SIGKILL) }
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

extension JobProcess {
  /// Whose jobs these are: one agent, known by its state directory. Every
  /// process of its jobs carries `DECKHAND_JOB_OWNER=<key>`, and its job
  /// cgroups live under one folder, so that an agent that starts again
  /// ends what the previous one, killed, left running (``sweepLeftovers()``).
  struct Owner: Sendable {
    /// ``ProcessSweep/ownerKey(_:)`` of the state directory.
    let key: String

    init(stateDirectory: String) { key = ProcessSweep.ownerKey(stateDirectory) }

    /// What this agent's job cgroups' names (under the host's own cgroup)
    /// start with. The leading `_` keeps them apart from plugin groups: no
    /// plugin name starts with one.
    var folder: String { "_job-\(key)" }

    /// The cgroup of one job (flat, so that nothing is left once it is
    /// removed).
    func cgroup(_ instance: String) -> String { "\(folder)-\(instance)" }

    /// Ends every process this agent's jobs left, found by the owner
    /// entry and in the job cgroups, and removes the cgroups. At start it
    /// ends what a previous agent, killed, left: the agent has no record of
    /// them any more. Blocking: /proc and cgroups are read.
    func sweepLeftovers() -> Int {
      let sweep = ProcessSweep(marker: "\(JobProcess.ownerKey)=\(key)")
      let count = sweep.members().count
      sweep.killAll()
      if let parent = ProcessSweep.trackingParent() { ProcessSweep.sweepGroups(in: parent, prefix: "\(folder)-") }
      return count
    }
  }
}
