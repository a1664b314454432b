internal import CDeckhandSystem
internal import Foundation

/// Everything one launch started (a job's command, an interactive exec, a
/// plugin), found again after the process that started it is gone: its
/// process group, every process whose environment carries the launch's
/// marker entry (descendants that called setsid and were orphaned to init,
/// which a walk from a dead parent no longer finds; Jenkins'
/// ProcessTreeKiller finds a build's leftovers the same way), and, where
/// the machine has a writable cgroup hierarchy, every process in the
/// launch's own cgroup (which also holds a process that cleared its
/// environment).
package struct ProcessSweep: Sendable {
  /// The `KEY=VALUE` entry the launch put in its environment.
  package let marker: String
  /// The launch's process group (its first process's pid), or 0.
  package var processGroup: Int32 = 0
  /// Its cgroup folder, if it has one.
  package let cgroup: String?

  /// A sweep for the processes marked with `marker`, and in `cgroup`.
  package init(marker: String, cgroup: String? = nil) {
    self.marker = marker
    self.cgroup = cgroup
  }

  /// The folder tracking groups are made in: the host's own cgroup folder
  /// (`deckhand/`), on cgroup v2 or in v1's `pids` hierarchy. nil where the
  /// machine offers no writable cgroups.
  package static func trackingParent(control: ResourceControl = .machine) -> String? {
    switch control.mechanism {
    case .cgroupV2: control.parents[""]
    case .cgroupV1: control.parents["pids"]
    case .rlimits: nil
    }
  }

  /// Makes a cgroup that only tracks processes (no limits) at `name` (a
  /// relative path) under ``trackingParent(control:)``. nil where the
  /// machine offers none.
  package static func trackingGroup(_ name: String, control: ResourceControl = .machine) -> String? {
    guard var folder = trackingParent(control: control) else { return nil }
    for part in name.split(separator: "/") {
      folder += "/\(part)"
      if mkdir(folder, 0o755) != 0 && errno != EEXIST { return nil }
    }
    return folder
  }

  /// The processes the sweep finds now (the process group is signalled as
  /// a group, not listed).
  package func members() -> [Int32] {
    var found = Self.marked(marker)
    if let cgroup { found += Self.processes(inCgroup: cgroup) }
    let own = getpid()
    return Array(Set(found.filter { $0 != own && $0 > 1 }))
  }

  /// Sends `signal` to the process group and to every member.
  package func signal(_ signal: Int32) {
    if processGroup > 0 { _ = kill(-processGroup, signal) }
    for pid in members() { _ = kill(pid, signal) }
  }

  /// SIGKILLs the process group and every member, again until none is
  /// found (a process may fork while it is being killed) or `rounds` are
  /// done, then removes the cgroup. True if nothing was left.
  @discardableResult
  package func killAll(rounds: Int = 20) -> Bool {
    var clean = false
    for round in 0..<rounds {
      if processGroup > 0 { _ = kill(-processGroup, SIGKILL) }
      let left = members()
      if left.isEmpty {
        clean = true
        break
      }
      for pid in left { _ = kill(pid, SIGKILL) }
      // A killed process stays listed until its parent reaps it; give
      // the parents (init, the agent's waiter threads) a moment.
      usleep(UInt32(min(2_000 * (round + 1), 20_000)))
    }
    if let cgroup { _ = rmdir(cgroup) }
    return clean
  }

  /// A short name for a host (its state directory's path) to mark its
  /// processes with: FNV-1a, 64 bits, in hex (a name, not a secret).
  package static func ownerKey(_ stateDirectory: String) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in stateDirectory.utf8 {
      hash ^= UInt64(byte)
      hash &*= 0x100_0000_01b3
    }
    return String(hash, radix: 16)
  }

  /// The `KEY=VALUE` entry for `key` in a process's environment, if it
  /// has one (nil also when /proc cannot be read).
  package static func environmentEntry(_ key: String, of pid: Int32) -> String? {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return nil }
    let prefix = Array("\(key)=".utf8)
    for entry in data.split(separator: 0) where entry.starts(with: prefix) {
      return String(decoding: entry, as: UTF8.self)
    }
    return nil
  }

  /// Pids of every process whose environment holds `entry` exactly.
  package static func marked(_ entry: String) -> [Int32] {
    guard entry.contains("=") else { return [] }
    var found = [pid_t](repeating: 0, count: 4096)
    let count = deckhand_processes_with_env(entry, &found, Int32(found.count))
    return Array(found.prefix(Int(count))).filter { $0 != getpid() }
  }

  /// Pids listed in a cgroup's `cgroup.procs` (zombies included).
  static func processes(inCgroup folder: String) -> [Int32] {
    guard let text = try? String(contentsOfFile: "\(folder)/cgroup.procs", encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap { Int32($0) }
  }

  /// Ends what earlier launches left in the cgroups in `folder` whose
  /// names start with `prefix` (made with ``trackingGroup(_:control:)``)
  /// and removes them: a host that was killed could not.
  package static func sweepGroups(in folder: String, prefix: String) {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
    for name in names where name.hasPrefix(prefix) && !name.contains(".") {
      ProcessSweep(marker: "", cgroup: "\(folder)/\(name)").killAll()
    }
  }
}
