internal import CDeckhandSystem
package import DeckhandCore
internal import Foundation

#if canImport(Glibc)
  internal import Glibc
#endif

/// Enforces a manifest's `limits` on a plugin process: each plugin in a
/// cgroup of its own (v2 where the machine has it, v1 where it has only
/// that), removed when the plugin is; rlimits where neither can be used.
///
/// The process is moved into its cgroup right after it is spawned
/// (posix_spawn cannot start it there), before the host waits for it to
/// serve.
package struct ResourceControl: Sendable {
  /// How limits are enforced on this machine.
  package enum Mechanism: String, Sendable, Hashable {
    case cgroupV2 = "cgroup-v2"
    case cgroupV1 = "cgroup-v1"
    case rlimits
  }

  /// The mechanism in force.
  package let mechanism: Mechanism
  /// v2: the folder new groups are made in. v1: one such folder per
  /// controller (memory, pids, cpu).
  let parents: [String: String]

  /// Detects what the machine offers under `root` (`/sys/fs/cgroup`): a
  /// writable cgroup v2 hierarchy, else writable v1 memory, pids and cpu
  /// hierarchies, else rlimits.
  package static func detect(root: String = "/sys/fs/cgroup", processCgroups: String = "/proc/self/cgroup")
    -> ResourceControl
  {
    let own = Self.ownCgroups(processCgroups)
    if FileManager.default.fileExists(atPath: "\(root)/cgroup.controllers"), let path = own[""] {
      let parent = "\(root)\(path == "/" ? "" : path)/deckhand"
      if Self.prepare(parent) { return ResourceControl(mechanism: .cgroupV2, parents: ["": parent]) }
    }
    var parents: [String: String] = [:]
    for controller in ["memory", "pids", "cpu"] {
      guard FileManager.default.fileExists(atPath: "\(root)/\(controller)/tasks") else { continue }
      let path = own[controller] ?? "/"
      let parent = "\(root)/\(controller)\(path == "/" ? "" : path)/deckhand"
      if Self.prepare(parent) { parents[controller] = parent }
    }
    if parents.count == 3 { return ResourceControl(mechanism: .cgroupV1, parents: parents) }
    return ResourceControl(mechanism: .rlimits, parents: [:])
  }

  /// What this machine offers, detected once, on first use.
  package static let machine = ResourceControl.detect()

  /// The groups a plugin launched earlier (by a previous host) is in.
  package func existing(plugin: String) -> Applied {
    // A name that is not one path component has no group: the launch refused it.
    Applied(mechanism: mechanism, groups: parents.compactMapValues { try? HostPaths.child($0, plugin: plugin, "") })
  }

  /// No limits enforced by cgroups at all (tests, or a host that wants
  /// none): rlimits only.
  package static let rlimitsOnly = ResourceControl(mechanism: .rlimits, parents: [:])

  /// The cgroups (or none) a plugin was put in.
  package struct Applied: Sendable, Hashable {
    /// How its limits are enforced.
    package var mechanism: Mechanism
    /// Its cgroup folders, one per v1 controller or one for v2.
    package var groups: [String: String]

    package init(mechanism: Mechanism, groups: [String: String]) {
      self.mechanism = mechanism
      self.groups = groups
    }
  }

  /// Puts `pid` under `limits`.
  ///
  /// - Throws: ``DeckhandCore/DeckhandError`` (`launchFailed`) if a group
  ///   cannot be made or a limit not written; the caller kills the process.
  package func apply(_ limits: PluginManifest.Limits, pid: Int32, plugin: String) throws -> Applied {
    if let nofile = limits.nofile {
      let rc = deckhand_set_rlimit(pid, deckhand_rlimit_nofile(), UInt64(nofile))
      guard rc == 0 else { throw failure(plugin, "RLIMIT_NOFILE", rc) }
    }
    var limitsByMechanism = limits
    limitsByMechanism.nofile = nil
    guard !limitsByMechanism.isEmpty else { return Applied(mechanism: mechanism, groups: [:]) }
    switch mechanism {
    case .rlimits:
      if let memory = limits.memoryMB {
        let rc = deckhand_set_rlimit(pid, deckhand_rlimit_as(), UInt64(memory) << 20)
        guard rc == 0 else { throw failure(plugin, "RLIMIT_AS", rc) }
      }
      // RLIMIT_NPROC counts the whole user's processes, and CPU percent has
      // no rlimit: neither can be enforced without cgroups.
      if limits.pids != nil || limits.cpuPercent != nil {
        throw DeckhandError(
          .launchFailed,
          "plugin \(plugin): limits.pids and limits.cpu_percent need cgroups, and this machine offers no writable cgroup hierarchy"
        )
      }
      return Applied(mechanism: .rlimits, groups: [:])
    case .cgroupV2:
      let group = try HostPaths.child(parents[""]!, plugin: plugin, "")
      try make(group, plugin)
      var writes: [(String, String)] = []
      if let memory = limits.memoryMB {
        writes += [("memory.max", "\(UInt64(memory) << 20)"), ("memory.swap.max", "0")]
      }
      if let pids = limits.pids { writes.append(("pids.max", "\(pids)")) }
      if let cpu = limits.cpuPercent { writes.append(("cpu.max", "\(cpu * 1000) 100000")) }
      for (file, value) in writes { try write(value, "\(group)/\(file)", plugin, optional: file == "memory.swap.max") }
      try write("\(pid)", "\(group)/cgroup.procs", plugin)
      return Applied(mechanism: .cgroupV2, groups: ["": group])
    case .cgroupV1:
      var groups: [String: String] = [:]
      var writes: [(String, String, String)] = []
      if let memory = limits.memoryMB {
        writes += [
          ("memory", "memory.limit_in_bytes", "\(UInt64(memory) << 20)"),
          ("memory", "memory.memsw.limit_in_bytes", "\(UInt64(memory) << 20)"),
        ]
      }
      if let pids = limits.pids { writes.append(("pids", "pids.max", "\(pids)")) }
      if let cpu = limits.cpuPercent {
        writes += [("cpu", "cpu.cfs_period_us", "100000"), ("cpu", "cpu.cfs_quota_us", "\(cpu * 1000)")]
      }
      for (controller, file, value) in writes {
        let group = try HostPaths.child(parents[controller]!, plugin: plugin, "")
        if groups[controller] == nil {
          try make(group, plugin)
          groups[controller] = group
        }
        try write(value, "\(group)/\(file)", plugin, optional: file.contains("memsw"))
      }
      for group in groups.values { try write("\(pid)", "\(group)/cgroup.procs", plugin) }
      return Applied(mechanism: .cgroupV1, groups: groups)
    }
  }

  /// Whether the kernel killed a process of the group for memory.
  package func oomKilled(_ applied: Applied) -> Bool {
    let file: String
    switch applied.mechanism {
    case .rlimits: return false
    case .cgroupV2: file = (applied.groups[""] ?? "") + "/memory.events"
    case .cgroupV1: file = (applied.groups["memory"] ?? "") + "/memory.oom_control"
    }
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return false }
    for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
      return (Int(line.dropFirst("oom_kill ".count)) ?? 0) > 0
    }
    return false
  }

  /// Removes the plugin's groups (once its processes are gone).
  package func remove(_ applied: Applied) {
    for group in applied.groups.values {
      for _ in 0..<50 {
        if rmdir(group) == 0 || errno == ENOENT { break }
        usleep(2_000)
      }
    }
  }

  // MARK: Helpers

  /// controller → path, from /proc/self/cgroup ("" for v2).
  static func ownCgroups(_ file: String) -> [String: String] {
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return [:] }
    var paths: [String: String] = [:]
    for line in text.split(separator: "\n") {
      let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
      guard parts.count == 3 else { continue }
      for controller in parts[1].split(separator: ",") { paths[String(controller)] = String(parts[2]) }
      if parts[1].isEmpty { paths[""] = String(parts[2]) }
    }
    return paths
  }

  /// Makes `folder` and checks that groups can be made in it.
  private static func prepare(_ folder: String) -> Bool {
    if mkdir(folder, 0o755) != 0 && errno != EEXIST { return false }
    return access(folder, W_OK) == 0
  }

  private func make(_ group: String, _ plugin: String) throws {
    if mkdir(group, 0o755) != 0 && errno != EEXIST {
      throw failure(plugin, "cgroup \(group)", errno)
    }
  }

  private func write(_ value: String, _ path: String, _ plugin: String, optional: Bool = false) throws {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    if fd < 0 {
      if optional && errno == ENOENT { return }
      throw failure(plugin, path, errno)
    }
    defer { close(fd) }
    let written = value.withCString { Glibc.write(fd, $0, strlen($0)) }
    if written < 0 { throw failure(plugin, "\(path) = \(value)", errno) }
  }

  private func failure(_ plugin: String, _ what: String, _ code: Int32) -> DeckhandError {
    DeckhandError(
      .launchFailed,
      "plugin \(plugin): cannot apply its limits (\(what)): \(String(cString: strerror(code))); run the host as root or with a delegated cgroup, or remove \"limits\" from the manifest"
    )
  }
}
