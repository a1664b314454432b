/// One plugin's CPU time so far and resident memory now, as its node's
/// agent reported them with a heartbeat.
package struct PluginUsage: Sendable, Hashable, Codable {
  package var plugin: String
  package var cpuSeconds: Double
  package var residentBytes: Double

  package init(plugin: String, cpuSeconds: Double, residentBytes: Double) {
    self.plugin = plugin
    self.cpuSeconds = cpuSeconds
    self.residentBytes = residentBytes
  }

  /// Most plugins a report may name; the rest are dropped.
  package static let maxPerReport = 256

  /// What a node reported, made safe to keep: entries whose name is not a
  /// valid plugin name, whose figures are not finite and non-negative, or
  /// that repeat a name are dropped; at most ``maxPerReport``, sorted by
  /// name. A node's report is its own word and only ever shown.
  package static func checked(_ reported: [PluginUsage]) -> [PluginUsage] {
    var seen: Set<String> = []
    var kept: [PluginUsage] = []
    for usage in reported where kept.count < maxPerReport {
      guard PluginName.isValid(usage.plugin), usage.cpuSeconds.isFinite, usage.cpuSeconds >= 0,
        usage.residentBytes.isFinite, usage.residentBytes >= 0, seen.insert(usage.plugin).inserted
      else { continue }
      kept.append(usage)
    }
    return kept.sorted { $0.plugin < $1.plugin }
  }
}
