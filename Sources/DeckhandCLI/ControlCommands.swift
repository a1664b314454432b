internal import ArgumentParser
internal import DeckhandClient
internal import DeckhandCore
internal import DeckhandProtocol
internal import Foundation
internal import GRPCCore

/// `deckhand tokens create|list|revoke`.
struct TokensCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tokens", abstract: "Join, operator and viewer tokens of a server, and invites.",
    subcommands: [Create.self, Invite.self, Login.self, List.self, Revoke.self])

  struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Make a token; it is printed once and stored hashed.")
    @OptionGroup var options: OperatorOptions
    @Option(help: "worker (joins agents), operator (runs these commands) or viewer (reads only).") var role = "worker"
    @Option(help: "How long it is valid (e.g. 1h, 30m); default: until revoked.") var ttl: String?
    @Option(help: "A note about what the token is for.") var description = ""
    @Option(
      name: .customLong("label"),
      help: "A label every node that joins with this worker token gets, KEY=VALUE; repeatable.")
    var labels: [String] = []
    @Option(
      name: .customLong("allow-label"),
      help: "A label key a node joining with this worker token may set itself (--label of deckhand agent); repeatable.")
    var allowedLabelKeys: [String] = []

    func run() async throws {
      var request = Deckhand_Control_V1_CreateTokenRequest()
      switch role {
      case "worker": request.role = .worker
      case "operator": request.role = .operator
      case "viewer": request.role = .viewer
      default: throw ValidationError("--role must be worker, operator or viewer")
      }
      request.ttlMs = try TokensCommand.milliseconds(ttl)
      request.description_p = description
      request.labels = try KeyValues.parse(labels, flag: "--label")
      request.allowedLabelKeys = allowedLabelKeys
      let response = try await options.withControl { control, metadata in
        try await control.createToken(request, metadata: metadata)
      }
      if options.json {
        try options.printJSON([response], single: true)
      } else {
        print(response.secret)
      }
    }
  }

  struct Invite: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Make an invite: good once, for `deckhand login --server ADDRESS --invite INVITE`.")
    @OptionGroup var options: OperatorOptions
    @Option(help: "What the login token it turns into may do: operator or viewer.") var role = "viewer"
    @Option(help: "How long it may be used (e.g. 1h); default: 24h.") var ttl: String?
    @Option(help: "A note about whom it is for.") var description = ""

    func run() async throws {
      var request = Deckhand_Control_V1_CreateInviteRequest()
      switch role {
      case "operator": request.role = .operator
      case "viewer": request.role = .viewer
      default: throw ValidationError("--role must be operator or viewer")
      }
      request.ttlMs = try TokensCommand.milliseconds(ttl)
      request.description_p = description
      let response = try await options.withControl { control, metadata in
        try await control.createInvite(request, metadata: metadata)
      }
      if options.json { return try options.printJSON([response], single: true) }
      print(response.secret)
    }
  }

  struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Make a login token of your own role (operator or viewer), e.g. for the web UI or another machine.")
    @OptionGroup var options: OperatorOptions
    @Option(help: "How long it is valid (e.g. 8h); default: until revoked.") var ttl: String?
    @Option(help: "A note about what it is for.") var description = ""

    func run() async throws {
      var request = Deckhand_Control_V1_CreateLoginTokenRequest()
      request.ttlMs = try TokensCommand.milliseconds(ttl)
      request.description_p = description
      let response = try await options.withControl { control, metadata in
        try await control.createLoginToken(request, metadata: metadata)
      }
      if options.json { return try options.printJSON([response], single: true) }
      print(response.secret)
    }
  }

  /// `--ttl` in milliseconds; 0 when not given.
  static func milliseconds(_ ttl: String?) throws -> Int64 {
    guard let ttl else { return 0 }
    guard let duration = DurationText.parse(ttl), duration > .zero else {
      throw ValidationError("--ttl \(ttl): expected a duration such as 1h or 30m")
    }
    return Int64(duration.inMilliseconds.rounded())
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List tokens (never their secrets).")
    @OptionGroup var options: OperatorOptions

    func run() async throws {
      let tokens = try await options.withControl { control, metadata in
        try await control.listTokens(Deckhand_Control_V1_ListTokensRequest(), metadata: metadata).tokens
      }
      if options.json { return try options.printJSON(tokens) }
      print(
        TextTable.render(
          ["ID", "ROLE", "CREATED", "EXPIRES", "STATE", "DESCRIPTION"],
          tokens.map { token in
            let expired = token.expiresMs > 0 && Double(token.expiresMs) < Date().timeIntervalSince1970 * 1000
            return [
              token.id, token.role.name, TextTable.time(token.createdMs),
              token.expiresMs == 0 ? "never" : "\(Date(timeIntervalSince1970: Double(token.expiresMs) / 1000))",
              token.revoked ? "revoked" : expired ? "expired" : "valid", token.description_p,
            ]
          }))
    }
  }

  struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Revoke a token by id.")
    @OptionGroup var options: OperatorOptions
    @Argument(help: "The token's id (from tokens list).") var id: String
    @Flag(help: "Also remove every node that joined with this token (as `nodes rm` does).") var nodes = false

    func run() async throws {
      var request = Deckhand_Control_V1_RevokeTokenRequest()
      request.id = id
      request.nodes = nodes
      let response = try await options.withControl { control, metadata in
        try await control.revokeToken(request, metadata: metadata)
      }
      if options.json { return try options.printJSON([response], single: true) }
      print("revoked \(id)")
      for removal in response.removedNodes { NodesCommand.printRemoval(removal) }
      if nodes && response.removedNodes.isEmpty { print("no node had joined with it") }
    }
  }
}

/// `deckhand nodes ls|inspect`.
struct NodesCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "nodes", abstract: "The agents that joined the server.",
    subcommands: [List.self, Inspect.self, Label.self, Drain.self, Activate.self, Remove.self])

  static func status(_ status: Deckhand_Dispatcher_V1_NodeStatus) -> String {
    switch status {
    case .ready: "READY"
    case .down: "DOWN"
    default: "UNKNOWN"
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List nodes.")
    @OptionGroup var options: OperatorOptions

    func run() async throws {
      let nodes = try await options.withControl { control, metadata in
        try await control.listNodes(Deckhand_Control_V1_ListNodesRequest(), metadata: metadata).nodes
      }
      if options.json { return try options.printJSON(nodes) }
      print(
        TextTable.render(
          ["ID", "NAME", "STATUS", "AVAILABILITY", "LAST HEARTBEAT", "VERSION", "LABELS"],
          nodes.map {
            [
              $0.id, $0.name, NodesCommand.status($0.status), $0.availability == .drain ? "drain" : "active",
              TextTable.time($0.lastHeartbeatMs),
              $0.description_p.agentVersion, TextTable.labels($0.labels),
            ]
          }))
    }
  }

  struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one node.")
    @OptionGroup var options: OperatorOptions
    @Argument(help: "Node id or name.") var node: String

    func run() async throws {
      var request = Deckhand_Control_V1_GetNodeRequest()
      request.node = node
      let found = try await options.withControl { control, metadata in
        try await control.getNode(request, metadata: metadata)
      }
      if options.json { return try options.printJSON([found], single: true) }
      print("ID:             \(found.id)")
      print("Name:           \(found.name)")
      print("Status:         \(NodesCommand.status(found.status))")
      print("Availability:   \(found.availability == .drain ? "drain" : "active")")
      print("Last heartbeat: \(TextTable.time(found.lastHeartbeatMs))")
      print("Hostname:       \(found.description_p.hostname)")
      print("Platform:       \(found.description_p.platform)")
      print("Agent version:  \(found.description_p.agentVersion)")
      print("Labels:         \(TextTable.labels(found.labels))")
      print("Agent labels:   \(TextTable.labels(found.agentLabels)) (reported by the agent; not matched)")
      print("Plugins:        \(TextTable.labels(found.description_p.plugins))")
      if !found.pluginUsage.isEmpty {
        print("Plugin usage:   (reported \(TextTable.time(found.pluginUsageMs)))")
        for usage in found.pluginUsage {
          let memory = ByteText.format(Int64(usage.residentBytes))
          print("  \(usage.plugin): CPU \(String(format: "%.2f", usage.cpuSeconds)) s, memory \(memory)")
        }
      }
    }
  }
}

extension NodesCommand {
  /// `deckhand nodes label NODE key=value … key-`.
  struct Label: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Set (key=value) and remove (key-) a node's labels: the ones selectors and job targets match.")
    @OptionGroup var options: OperatorOptions
    @Argument(help: "Node id or name.") var node: String
    @Argument(help: "key=value to set, key- to remove.") var changes: [String]

    func validate() throws {
      if changes.isEmpty { throw ValidationError("give at least one key=value or key-") }
    }

    func run() async throws {
      var request = Deckhand_Control_V1_SetNodeLabelsRequest()
      request.node = node
      request.remove = changes.filter { $0.hasSuffix("-") && !$0.contains("=") }.map { String($0.dropLast()) }
      request.set = try KeyValues.parse(changes.filter { !($0.hasSuffix("-") && !$0.contains("=")) }, flag: "label")
      let updated = try await options.withControl { control, metadata in
        try await control.setNodeLabels(request, metadata: metadata)
      }
      if options.json { return try options.printJSON([updated], single: true) }
      print("\(updated.name): \(TextTable.labels(updated.labels))")
    }
  }
}

extension NodesCommand {
  /// `deckhand nodes drain NODE`.
  struct Drain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Stop new jobs and deployment tasks from reaching a node; what runs there goes on.")
    @OptionGroup var options: OperatorOptions
    @Argument(help: "Node id or name.") var node: String

    func run() async throws { try await NodesCommand.setAvailability(node, .drain, options) }
  }

  /// `deckhand nodes activate NODE`.
  struct Activate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Let new work reach a drained node again.")
    @OptionGroup var options: OperatorOptions
    @Argument(help: "Node id or name.") var node: String

    func run() async throws { try await NodesCommand.setAvailability(node, .active, options) }
  }

  /// `deckhand nodes rm NODE`.
  struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "rm",
      abstract: "Remove a node: its credential is refused, its tasks retired, its unfinished jobs queued again.",
      discussion: """
        What already runs on the machine is left to its agent, which can no longer reach the server. To bring \
        the machine back, clear the agent's state directory and join it again with a join token.
        """)
    @OptionGroup var options: OperatorOptions
    @Argument(help: "Node id or name.") var node: String

    func run() async throws {
      var request = Deckhand_Control_V1_RemoveNodeRequest()
      request.node = node
      let removal = try await options.withControl { control, metadata in
        try await control.removeNode(request, metadata: metadata)
      }
      if options.json { return try options.printJSON([removal], single: true) }
      NodesCommand.printRemoval(removal)
    }
  }

  static func printRemoval(_ removal: Deckhand_Control_V1_RemoveNodeResponse) {
    print(
      "removed node \(removal.nodeName) (\(removal.nodeID)): \(removal.retiredTasks) task(s) retired, "
        + "\(removal.requeuedJobs) job(s) queued again")
  }

  static func setAvailability(
    _ node: String, _ availability: Deckhand_Dispatcher_V1_NodeAvailability, _ options: OperatorOptions
  ) async throws {
    var request = Deckhand_Control_V1_SetNodeAvailabilityRequest()
    request.node = node
    request.availability = availability
    let updated = try await options.withControl { control, metadata in
      try await control.setNodeAvailability(request, metadata: metadata)
    }
    if options.json { return try options.printJSON([updated], single: true) }
    print("\(updated.name): \(availability == .drain ? "drain" : "active")")
  }
}

/// `deckhand tasks ls [--node N]`.
struct TasksCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tasks", abstract: "Plugins assigned to nodes.", subcommands: [List.self])

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List tasks.")
    @OptionGroup var options: OperatorOptions
    @Option(help: "Only this node (id or name).") var node: String?
    @Option(help: "Only this deployment.") var deployment: String?

    func run() async throws {
      var request = Deckhand_Control_V1_ListTasksRequest()
      request.node = node ?? ""
      request.deploymentID = deployment ?? ""
      let (tasks, nodes) = try await options.withControl { control, metadata in
        (
          try await control.listTasks(request, metadata: metadata).tasks,
          try await control.listNodes(Deckhand_Control_V1_ListNodesRequest(), metadata: metadata).nodes
        )
      }
      if options.json { return try options.printJSON(tasks) }
      let names = Dictionary(nodes.map { ($0.id, $0.name) }) { first, _ in first }
      print(
        TextTable.render(
          ["ID", "NODE", "PLUGIN", "VERSION", "STATE", "UPDATED", "MESSAGE"],
          tasks.map {
            [
              $0.id, names[$0.nodeID] ?? $0.nodeID, $0.plugin, $0.version, $0.state.displayName,
              TextTable.time($0.updatedMs), $0.message,
            ]
          }))
    }
  }
}

/// `deckhand deploy PLUGIN@VERSION --selector k=v [--config JSON]`.
struct DeployCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "deploy",
    abstract: "Run a plugin version on every node that matches the selector.",
    discussion: """
      The plugin's package must be pushed first (deckhand artifacts push). A new version replaces the \
      old one --parallelism nodes at a time (0: all at once), waiting --delay after each replacement \
      settles and watching each for --monitor after it runs. When more than --max-failures nodes fail, \
      the rollout pauses, or with --failure-action rollback, every node returns to the previous version.
      """)
  @OptionGroup var options: OperatorOptions
  @Argument(help: "PLUGIN@VERSION") var target: String
  @Option(name: .customLong("selector"), help: "A node label, key=value, that nodes must have; repeatable.")
  var selector: [String] = []
  @Option(help: "JSON object that replaces the manifest's config.") var config: String?
  @Option(help: "Failed nodes tolerated before the rollout stops.") var maxFailures = 0
  @Option(help: "Nodes replaced at once (0: all at once).") var parallelism = 1
  @Option(help: "Wait after each replacement settles before the next (e.g. 10s).") var delay: String?
  @Option(help: "What a failed rollout does: pause (what runs stays) or rollback (back to the previous version).")
  var failureAction = "pause"
  @Option(help: "How long a replaced node is watched after it runs; a failure then counts (e.g. 30s).")
  var monitor: String?

  func run() async throws {
    let parts = target.split(separator: "@", maxSplits: 1).map(String.init)
    guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
      throw ValidationError("expected PLUGIN@VERSION, got \(target)")
    }
    var request = Deckhand_Control_V1_CreateDeploymentRequest()
    request.plugin = parts[0]
    request.version = parts[1]
    request.selector = try KeyValues.parse(selector, flag: "--selector", emptyValues: false)
    request.configJson = config ?? ""
    request.maxFailures = Int32(maxFailures)
    guard parallelism >= 0 else { throw ValidationError("--parallelism \(parallelism): expected 0 (all) or more") }
    request.parallelism = parallelism == 0 ? -1 : Int32(parallelism)
    for (text, flag) in [(delay, "--delay"), (monitor, "--monitor")] {
      guard let text else { continue }
      guard let duration = DurationText.parse(text) else {
        throw ValidationError("\(flag) \(text): expected a duration such as 10s or 2m")
      }
      if flag == "--delay" {
        request.delayMs = Int64(duration.inMilliseconds)
      } else {
        request.monitorMs = Int64(duration.inMilliseconds)
      }
    }
    guard ["pause", "rollback"].contains(failureAction) else {
      throw ValidationError("--failure-action \(failureAction): expected pause or rollback")
    }
    request.failureAction = failureAction
    let deployment = try await options.withControl { control, metadata in
      try await control.createDeployment(request, metadata: metadata)
    }
    if options.json { return try options.printJSON([deployment], single: true) }
    print("deployment \(deployment.id): \(deployment.plugin)@\(deployment.version) \(deployment.state)")
  }
}

/// `deckhand deployments ls|inspect`.
struct DeploymentsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "deployments", abstract: "Desired plugins and their rollouts.", subcommands: [List.self, Inspect.self])

  static func counts(_ deployment: Deckhand_Control_V1_Deployment) -> String {
    deployment.taskCounts.isEmpty
      ? "-" : deployment.taskCounts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List deployments.")
    @OptionGroup var options: OperatorOptions

    func run() async throws {
      let deployments = try await options.withControl { control, metadata in
        try await control.listDeployments(Deckhand_Control_V1_ListDeploymentsRequest(), metadata: metadata).deployments
      }
      if options.json { return try options.printJSON(deployments) }
      print(
        TextTable.render(
          ["ID", "PLUGIN", "VERSION", "SELECTOR", "STATE", "TASKS", "CREATED"],
          deployments.map {
            [
              $0.id, $0.plugin, $0.version, TextTable.labels($0.selector), $0.state, DeploymentsCommand.counts($0),
              TextTable.time($0.createdMs),
            ]
          }))
    }
  }

  struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one deployment.")
    @OptionGroup var options: OperatorOptions
    @Argument(help: "Deployment id.") var id: String

    func run() async throws {
      var request = Deckhand_Control_V1_GetDeploymentRequest()
      request.id = id
      let deployment = try await options.withControl { control, metadata in
        try await control.getDeployment(request, metadata: metadata)
      }
      if options.json { return try options.printJSON([deployment], single: true) }
      print("ID:        \(deployment.id)")
      print("Plugin:    \(deployment.plugin)@\(deployment.version)")
      print("Artifact:  \(deployment.artifactDigest)")
      print("Selector:  \(TextTable.labels(deployment.selector))")
      print("Config:    \(deployment.configJson.isEmpty ? "-" : deployment.configJson)")
      print("State:     \(deployment.state)")
      print("Tasks:     \(DeploymentsCommand.counts(deployment))")
    }
  }
}

/// `deckhand artifacts push|ls`.
struct ArtifactsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "artifacts", abstract: "Plugin packages stored on the server.", subcommands: [Push.self, List.self])

  struct Push: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Upload a plugin package: a tar.gz with plugin.json at its root and the files it names.")
    @OptionGroup var options: OperatorOptions
    @Argument(help: "The package (.tar.gz).") var path: String
    @Option(help: "The platform it is built for.") var platform: String?

    func run() async throws {
      let path = HostOptions.absolute(self.path)
      let manifest: PluginManifest
      do {
        manifest = try ArtifactPackage.manifest(path: path)
      } catch let error as DeckhandError {
        FileHandle.standardError.write(Data("deckhand: \(error.message)\n".utf8))
        throw ExitCode(2)
      }
      guard let handle = FileHandle(forReadingAtPath: path) else {
        FileHandle.standardError.write(Data("deckhand: cannot read \(path)\n".utf8))
        throw ExitCode(2)
      }
      defer { try? handle.close() }
      let platform = self.platform ?? ArtifactPackage.platform
      let artifact = try await options.withControl { control, metadata in
        try await control.pushArtifact(metadata: metadata) { writer in
          var first = true
          while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty {
            var chunk = Deckhand_Control_V1_PushArtifactChunk()
            if first {
              chunk.name = manifest.name
              chunk.version = manifest.version
              chunk.platform = platform
              first = false
            }
            chunk.data = data
            try await writer.write(chunk)
          }
        }
      }
      if options.json { return try options.printJSON([artifact], single: true) }
      print("pushed \(artifact.name)@\(artifact.version) \(artifact.digest) (\(artifact.size) bytes)")
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List artifacts.")
    @OptionGroup var options: OperatorOptions

    func run() async throws {
      let artifacts = try await options.withControl { control, metadata in
        try await control.listArtifacts(Deckhand_Control_V1_ListArtifactsRequest(), metadata: metadata).artifacts
      }
      if options.json { return try options.printJSON(artifacts) }
      print(
        TextTable.render(
          ["NAME", "VERSION", "PLATFORM", "SIZE", "DIGEST", "CREATED"],
          artifacts.map {
            [
              $0.name, $0.version, $0.platform, "\($0.size)", String($0.digest.prefix(16)),
              TextTable.time($0.createdMs),
            ]
          }))
    }
  }
}
