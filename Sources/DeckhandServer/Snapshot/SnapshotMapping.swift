package import DeckhandCore
package import DeckhandProtocol
internal import Foundation
internal import SwiftProtobuf

/// The store's records as snapshot records and back. Both stores export
/// and restore through these, so a snapshot taken from one restores into
/// the other unchanged.
package enum SnapshotMapping {
  package typealias Record = Deckhand_Control_V1_SnapshotRecord

  static func record(_ token: TokenRecord) -> Record {
    var record = Record()
    record.token = .with {
      $0.id = token.id
      $0.role = token.role.rawValue
      $0.secretHash = token.secretHash
      $0.createdMs = token.createdMs
      $0.expiresMs = token.expiresMs
      $0.revoked = token.revoked
      $0.description_p = token.description
      $0.labels = token.labels
      $0.allowedLabelKeys = token.allowedLabelKeys
    }
    return record
  }

  static func token(_ token: Deckhand_Control_V1_SnapshotToken) throws -> TokenRecord {
    guard let role = TokenRole(rawValue: token.role) else {
      throw DeckhandError(.configurationInvalid, "the snapshot's token \(token.id) has an unknown role \(token.role)")
    }
    return TokenRecord(
      id: token.id, role: role, secretHash: token.secretHash, createdMs: token.createdMs, expiresMs: token.expiresMs,
      revoked: token.revoked, description: token.description_p, labels: token.labels,
      allowedLabelKeys: token.allowedLabelKeys)
  }

  static func record(_ node: NodeRecord) -> Record {
    var record = Record()
    record.node = .with {
      $0.id = node.id
      $0.name = node.name
      $0.hostname = node.hostname
      $0.labels = node.labels
      $0.platform = node.platform
      $0.agentVersion = node.agentVersion
      $0.address = node.address
      $0.plugins = node.plugins
      $0.status = node.status.rawValue
      $0.lastHeartbeatMs = node.lastHeartbeatMs
      $0.createdMs = node.createdMs
      $0.credentialHash = node.credentialHash
      $0.agentLabels = node.agentLabels
      $0.joinTokenID = node.joinTokenId
      $0.availability = node.availability.rawValue
    }
    return record
  }

  static func node(_ node: Deckhand_Control_V1_SnapshotNode) -> NodeRecord {
    NodeRecord(
      id: node.id, name: node.name, hostname: node.hostname, labels: node.labels, platform: node.platform,
      agentVersion: node.agentVersion, address: node.address, plugins: node.plugins,
      status: NodeStatus(rawValue: node.status) ?? .unknown, lastHeartbeatMs: node.lastHeartbeatMs,
      createdMs: node.createdMs, credentialHash: node.credentialHash, agentLabels: node.agentLabels,
      joinTokenId: node.joinTokenID, availability: NodeAvailability(rawValue: node.availability) ?? .drain)
  }

  static func record(_ removed: RemovedNode) -> Record {
    var record = Record()
    record.removedNode = .with {
      $0.id = removed.id
      $0.name = removed.name
      $0.removedMs = removed.removedMs
    }
    return record
  }

  static func record(_ artifact: ArtifactRecord) -> Record {
    var record = Record()
    record.artifact = .with {
      $0.digest = artifact.digest
      $0.name = artifact.name
      $0.version = artifact.version
      $0.platform = artifact.platform
      $0.size = artifact.size
      $0.createdMs = artifact.createdMs
    }
    return record
  }

  /// A snapshot is checked before it is restored, but not trusted: a
  /// digest names a file, so it must be one.
  static func checkDigest(_ digest: String) throws {
    guard HexText.isDigest(digest) else {
      throw DeckhandError(
        .configurationInvalid, "the snapshot names an artifact \(digest.prefix(80)) that is not a SHA-256 digest")
    }
  }

  static func artifact(_ artifact: Deckhand_Control_V1_SnapshotArtifact) throws -> ArtifactRecord {
    try checkDigest(artifact.digest)
    return ArtifactRecord(
      digest: artifact.digest, name: artifact.name, version: artifact.version, platform: artifact.platform,
      size: artifact.size, createdMs: artifact.createdMs)
  }

  static func chunk(digest: String, offset: Int64, data: Data) -> Record {
    var record = Record()
    record.artifactChunk = .with {
      $0.digest = digest
      $0.offset = offset
      $0.data = data
    }
    return record
  }

  static func record(_ deployment: DeploymentRecord) -> Record {
    var record = Record()
    record.deployment = .with {
      $0.id = deployment.id
      $0.plugin = deployment.plugin
      $0.version = deployment.version
      $0.artifactDigest = deployment.artifactDigest
      $0.artifactSize = deployment.artifactSize
      $0.selector = deployment.selector
      $0.configJson = deployment.configJSON
      $0.maxFailures = Int64(deployment.maxFailures)
      $0.state = deployment.state.text
      $0.createdMs = deployment.createdMs
      // All at once is -1 here: 0 is what a snapshot without the field
      // reads as, and means the default, 1.
      $0.parallelism = deployment.parallelism == 0 ? -1 : Int64(deployment.parallelism)
      $0.delayMs = deployment.delayMs
      $0.failureAction = deployment.failureAction.rawValue
      $0.monitorMs = deployment.monitorMs
      $0.previousID = deployment.previousId
    }
    return record
  }

  static func deployment(_ deployment: Deckhand_Control_V1_SnapshotDeployment) -> DeploymentRecord {
    DeploymentRecord(
      id: deployment.id, plugin: deployment.plugin, version: deployment.version,
      artifactDigest: deployment.artifactDigest, artifactSize: deployment.artifactSize, selector: deployment.selector,
      configJSON: deployment.configJson, maxFailures: Int(deployment.maxFailures),
      state: DeploymentState(text: deployment.state), createdMs: deployment.createdMs,
      parallelism: deployment.parallelism == 0 ? 1 : max(0, Int(deployment.parallelism)), delayMs: deployment.delayMs,
      failureAction: DeploymentRecord.FailureAction(rawValue: deployment.failureAction) ?? .pause,
      monitorMs: deployment.monitorMs, previousId: deployment.previousID)
  }

  static func record(_ task: TaskRecord) -> Record {
    var record = Record()
    record.task = .with {
      $0.id = task.id
      $0.deploymentID = task.deploymentId
      $0.nodeID = task.nodeId
      $0.plugin = task.plugin
      $0.version = task.version
      $0.artifactDigest = task.artifactDigest
      $0.artifactSize = task.artifactSize
      $0.configJson = task.configJSON
      $0.state = Int32(task.state.rawValue)
      $0.message = task.message
      $0.updatedMs = task.updatedMs
      $0.active = task.active
    }
    return record
  }

  static func task(_ task: Deckhand_Control_V1_SnapshotTask) throws -> TaskRecord {
    guard let state = TaskState(rawValue: Int(task.state)) else {
      throw DeckhandError(.configurationInvalid, "the snapshot's task \(task.id) has an unknown state \(task.state)")
    }
    return TaskRecord(
      id: task.id, deploymentId: task.deploymentID, nodeId: task.nodeID, plugin: task.plugin, version: task.version,
      artifactDigest: task.artifactDigest, artifactSize: task.artifactSize, configJSON: task.configJson, state: state,
      message: task.message, updatedMs: task.updatedMs, active: task.active)
  }

  static func record(_ job: JobRecord, outputBytes: Int64) -> Record {
    let life = job.lifecycle
    var record = Record()
    record.job = .with {
      $0.id = job.id
      $0.spec = job.spec
      $0.singletonID = job.singletonId
      $0.targetRunner = job.targetRunner
      $0.targetLabels = job.targetLabels
      $0.project = job.project
      $0.state = Int32(life.state.rawValue)
      $0.runnerID = life.runnerId
      $0.queuedMs = job.queuedMs
      $0.assignedMs = life.assignedMs
      $0.ackedMs = life.ackedMs
      $0.completeMs = life.completeMs
      $0.expiresMs = life.expiresMs
      $0.heartbeatMs = life.heartbeatMs
      $0.exitCode = Int64(life.exitCode)
      $0.error = life.error
      $0.cancelRequested = life.cancelRequested
      $0.forceCancel = life.forceCancel
      $0.resultCode = life.resultCode
      $0.results = life.results
      $0.outputSequence = job.outputSequence
      $0.outputBytes = outputBytes
    }
    return record
  }

  static func job(_ job: Deckhand_Control_V1_SnapshotJob) throws -> JobRecord {
    guard let state = JobState(rawValue: Int(job.state)) else {
      throw DeckhandError(.configurationInvalid, "the snapshot's job \(job.id) has an unknown state \(job.state)")
    }
    return JobRecord(
      id: job.id, spec: job.spec, singletonId: job.singletonID, targetRunner: job.targetRunner,
      targetLabels: job.targetLabels, project: job.project, queuedMs: job.queuedMs,
      lifecycle: JobLifecycle(
        state: state, runnerId: job.runnerID, assignedMs: job.assignedMs, ackedMs: job.ackedMs,
        completeMs: job.completeMs, expiresMs: job.expiresMs, heartbeatMs: job.heartbeatMs,
        exitCode: Int(job.exitCode), error: job.error, cancelRequested: job.cancelRequested,
        forceCancel: job.forceCancel, resultCode: job.resultCode, results: job.results),
      outputSequence: job.outputSequence)
  }

  static func record(_ output: JobOutputRecord) -> Record {
    var record = Record()
    record.jobOutput = .with {
      $0.jobID = output.jobId
      $0.sequence = output.sequence
      $0.kind = Int32(output.kind)
      $0.data = output.data
      $0.timestampMs = output.timestampMs
    }
    return record
  }

  static func output(_ output: Deckhand_Control_V1_SnapshotJobOutput) -> JobOutputRecord {
    JobOutputRecord(
      jobId: output.jobID, sequence: output.sequence, kind: Int(output.kind), data: output.data,
      timestampMs: output.timestampMs)
  }

  static func record(_ variable: ConfigRecord) -> Record {
    var record = Record()
    record.configVariable = .with {
      $0.scope = Int32(variable.scope)
      $0.target = variable.target
      $0.name = variable.name
      $0.value = variable.value
    }
    return record
  }

  static func config(_ variable: Deckhand_Control_V1_SnapshotConfigVariable) -> ConfigRecord {
    ConfigRecord(scope: Int(variable.scope), target: variable.target, name: variable.name, value: variable.value)
  }

  static func secret(name: String, value: String) -> Record {
    var record = Record()
    record.secret = .with {
      $0.name = name
      $0.value = value
    }
    return record
  }
}
