internal import DeckhandClient
package import DeckhandCore
package import DeckhandProtocol
internal import Foundation

/// Store records as protocol messages.
enum ProtoMapping {
  static func event(_ event: FleetEvent) -> Deckhand_Control_V1_FleetEvent {
    var message = Deckhand_Control_V1_FleetEvent()
    message.sequence = event.sequence
    message.atMs = event.atMs
    message.kind = event.kind.rawValue
    message.nodeID = event.nodeId
    message.nodeName = event.nodeName
    message.plugin = event.plugin
    message.subject = event.subject
    message.message = event.message
    return message
  }

  static func usage(_ usage: PluginUsage) -> Deckhand_Dispatcher_V1_PluginUsage {
    var message = Deckhand_Dispatcher_V1_PluginUsage()
    message.plugin = usage.plugin
    message.cpuSeconds = usage.cpuSeconds
    message.residentBytes = usage.residentBytes
    return message
  }

  static func usage(_ message: Deckhand_Dispatcher_V1_PluginUsage) -> PluginUsage {
    PluginUsage(plugin: message.plugin, cpuSeconds: message.cpuSeconds, residentBytes: message.residentBytes)
  }

  static func node(_ record: NodeRecord, status: Deckhand_Dispatcher_V1_NodeStatus? = nil)
    -> Deckhand_Dispatcher_V1_Node
  {
    var node = Deckhand_Dispatcher_V1_Node()
    node.id = record.id
    node.name = record.name
    node.description_p.hostname = record.hostname
    node.labels = record.labels
    node.agentLabels = record.agentLabels
    node.availability = record.availability == .drain ? .drain : .active
    node.description_p.labels = record.agentLabels
    node.description_p.platform = record.platform
    node.description_p.agentVersion = record.agentVersion
    node.description_p.address = record.address
    node.description_p.plugins = record.plugins
    node.status =
      status
      ?? {
        switch record.status {
        case .ready: .ready
        case .down: .down
        case .unknown: .unknown
        }
      }()
    node.lastHeartbeatMs = record.lastHeartbeatMs
    node.createdMs = record.createdMs
    return node
  }

  static func task(_ record: TaskRecord) -> Deckhand_Dispatcher_V1_Task {
    var task = Deckhand_Dispatcher_V1_Task()
    task.id = record.id
    task.deploymentID = record.deploymentId
    task.nodeID = record.nodeId
    task.plugin = record.plugin
    task.traceContext = record.traceContext
    task.version = record.version
    task.artifactDigest = record.artifactDigest
    task.artifactSize = record.artifactSize
    task.configJson = record.configJSON
    task.state = Deckhand_Dispatcher_V1_TaskState(rawValue: record.state.rawValue) ?? .new
    task.message = record.message
    task.updatedMs = record.updatedMs
    return task
  }

  static func change(_ action: Deckhand_Dispatcher_V1_AssignmentChange.Action, _ record: TaskRecord)
    -> Deckhand_Dispatcher_V1_AssignmentChange
  {
    var change = Deckhand_Dispatcher_V1_AssignmentChange()
    change.action = action
    change.task = task(record)
    return change
  }

  static func assignments(_ message: AssignmentChain.Message<TaskRecord>) -> Deckhand_Dispatcher_V1_AssignmentsMessage {
    var proto = Deckhand_Dispatcher_V1_AssignmentsMessage()
    proto.type = message.isComplete ? .complete : .incremental
    proto.appliesTo = message.appliesTo
    proto.resultsIn = message.resultsIn
    proto.changes = message.changes.map { item in change(item.action == .remove ? .remove : .update, item.task) }
    return proto
  }

  static func token(_ record: TokenRecord) -> Deckhand_Control_V1_Token {
    var token = Deckhand_Control_V1_Token()
    token.id = record.id
    token.role = Deckhand_Control_V1_Role(record.role)
    token.createdMs = record.createdMs
    token.expiresMs = record.expiresMs
    token.revoked = record.revoked
    token.description_p = record.description
    token.labels = record.labels
    token.allowedLabelKeys = record.allowedLabelKeys
    return token
  }

  static func removal(_ removal: NodeRemoval) -> Deckhand_Control_V1_RemoveNodeResponse {
    var message = Deckhand_Control_V1_RemoveNodeResponse()
    message.nodeID = removal.node.id
    message.nodeName = removal.node.name
    message.retiredTasks = Int32(removal.retiredTasks.count)
    message.requeuedJobs = Int32(removal.releasedJobs.filter { $0.state == .queued }.count)
    return message
  }

  static func artifact(_ record: ArtifactRecord) -> Deckhand_Control_V1_Artifact {
    var artifact = Deckhand_Control_V1_Artifact()
    artifact.digest = record.digest
    artifact.name = record.name
    artifact.version = record.version
    artifact.platform = record.platform
    artifact.size = record.size
    artifact.createdMs = record.createdMs
    return artifact
  }

  static func deployment(_ record: DeploymentRecord, tasks: [TaskRecord]) -> Deckhand_Control_V1_Deployment {
    var deployment = Deckhand_Control_V1_Deployment()
    deployment.id = record.id
    deployment.plugin = record.plugin
    deployment.version = record.version
    deployment.artifactDigest = record.artifactDigest
    deployment.selector = record.selector
    deployment.configJson = record.configJSON
    deployment.maxFailures = Int32(record.maxFailures)
    deployment.state = record.state.text
    deployment.createdMs = record.createdMs
    deployment.parallelism = Int32(record.parallelism)
    deployment.delayMs = record.delayMs
    deployment.failureAction = record.failureAction.rawValue
    deployment.monitorMs = record.monitorMs
    deployment.previousID = record.previousId
    for task in tasks where task.deploymentId == record.id {
      deployment.taskCounts[task.state.displayName, default: 0] += 1
    }
    return deployment
  }
}

extension NodeRecord {
  /// Takes what the agent says about its node.
  mutating func describe(_ description: Deckhand_Dispatcher_V1_NodeDescription) {
    hostname = description.hostname
    agentLabels = description.labels
    platform = description.platform
    agentVersion = description.agentVersion
    address = description.address
    plugins = description.plugins
  }
}
