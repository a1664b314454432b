/// A plugin as Kubernetes objects (isolation mode `k8s`): a Pod, the
/// Service the agent reaches it through, and, for `network: "none"`, a
/// NetworkPolicy that denies it all egress.
///
/// The Pod mirrors the manifest: memory and CPU limits (requests equal,
/// so the pod gets Guaranteed QoS), the guest-agent launch contract over
/// TCP on ``PluginManifest/Isolation-swift.struct/port``, readiness through
/// GetStatus (the SDK's `grpc.health.v1` answer for
/// `plugin_comm.GuestAgentPlugin` is its GetStatus), and a security
/// context from the manifest's isolation. Kubernetes has no per-pod
/// `pids` or `nofile` setting (the kubelet's `podPidsLimit` is per node),
/// so those are recorded as annotations.
package struct KubernetesManifest: Sendable {
  /// What the manifest's `user` and `group` are as ids: Kubernetes takes
  /// only numbers. Resolving names needs the system's user database, so
  /// the caller does it.
  package struct Identity: Hashable, Sendable {
    package var uid: Int?
    package var gid: Int?
    package init(uid: Int? = nil, gid: Int? = nil) {
      self.uid = uid
      self.gid = gid
    }
  }

  /// The GetStatus-backed health service name readiness asks for.
  package static let readinessService = "plugin_comm.GuestAgentPlugin"
  /// Where the plugin's state directory is mounted in the pod.
  package static let stateDirectory = "/var/lib/deckhand/plugin"

  package var manifest: PluginManifest
  package var image: String
  package var namespace: String
  /// The container's command (the plugin binary in the image); nil keeps
  /// the image's entrypoint.
  package var command: String?
  package var identity: Identity

  package init(
    manifest: PluginManifest, image: String, namespace: String = "default", command: String? = nil,
    identity: Identity = Identity()
  ) {
    self.manifest = manifest
    self.image = image
    self.namespace = namespace
    self.command = command
    self.identity = identity
  }

  /// The objects' names: `deckhand-` and the plugin's name made a DNS-1123
  /// label (lower case, `a-z0-9-`, at most 63 characters).
  package var objectName: String { Self.dnsLabel("deckhand-" + manifest.name) }

  /// Checks what Kubernetes would refuse.
  ///
  /// - Throws: ``DeckhandError`` naming the problem.
  package func validate() throws(DeckhandError) {
    guard !image.isEmpty, !image.contains(where: \.isWhitespace) else {
      throw DeckhandError(.configurationInvalid, "--image must name a container image, got \"\(image)\"")
    }
    guard Self.dnsLabel(namespace) == namespace, !namespace.isEmpty else {
      throw DeckhandError(
        .configurationInvalid,
        "--namespace \(namespace) is not a Kubernetes namespace name (lower case letters, digits and -, at most 63)")
    }
    if manifest.isolation.user != nil && identity.uid == nil {
      throw DeckhandError(
        .configurationInvalid, "isolation.user \(manifest.isolation.user ?? "") has no uid here; give a numeric user")
    }
    if manifest.isolation.group != nil && identity.gid == nil {
      throw DeckhandError(
        .configurationInvalid, "isolation.group \(manifest.isolation.group ?? "") has no gid here; give a numeric group"
      )
    }
  }

  /// The objects, in apply order.
  package func documents() throws(DeckhandError) -> [YAMLNode] {
    try validate()
    var documents = [pod(), service()]
    if manifest.isolation.network == .none { documents.append(networkPolicy()) }
    return documents
  }

  /// The objects as one YAML stream.
  package func yaml() throws(DeckhandError) -> String {
    YAMLNode.stream(try documents())
  }

  // MARK: Objects

  private var labels: YAMLNode {
    .mapping([
      ("app.kubernetes.io/name", .string(Self.labelValue(manifest.name))),
      ("app.kubernetes.io/version", .string(Self.labelValue(manifest.version))),
      ("app.kubernetes.io/managed-by", .string("deckhand")),
    ])
  }

  private var selector: YAMLNode {
    .mapping([
      ("app.kubernetes.io/name", .string(Self.labelValue(manifest.name))),
      ("app.kubernetes.io/managed-by", .string("deckhand")),
    ])
  }

  private func metadata(annotations: [(String, YAMLNode)] = []) -> YAMLNode {
    var fields: [(String, YAMLNode)] = [
      ("name", .string(objectName)), ("namespace", .string(namespace)), ("labels", labels),
    ]
    if !annotations.isEmpty { fields.append(("annotations", .mapping(annotations))) }
    return .mapping(fields)
  }

  func pod() -> YAMLNode {
    let isolation = manifest.isolation
    var annotations: [(String, YAMLNode)] = [
      ("deckhand.dev/plugin", .string(manifest.name)), ("deckhand.dev/isolation-mode", .string("k8s")),
    ]
    if let sha = manifest.sha256 { annotations.append(("deckhand.dev/entrypoint-sha256", .string(sha))) }
    if let pids = manifest.limits.pids { annotations.append(("deckhand.dev/pids-limit", .string(String(pids)))) }
    if let nofile = manifest.limits.nofile {
      annotations.append(("deckhand.dev/nofile-limit", .string(String(nofile))))
    }

    var podSecurity: [(String, YAMLNode)] = []
    if let uid = identity.uid {
      podSecurity.append(("runAsUser", .integer(uid)))
      podSecurity.append(("runAsNonRoot", .bool(uid != 0)))
    }
    if let gid = identity.gid { podSecurity.append(("runAsGroup", .integer(gid))) }
    podSecurity.append(("seccompProfile", .mapping([("type", .string("RuntimeDefault"))])))

    var container: [(String, YAMLNode)] = [
      ("name", .string("plugin")), ("image", .string(image)), ("imagePullPolicy", .string("IfNotPresent")),
    ]
    if let command { container.append(("command", .sequence([.string(command)]))) }
    let contract = [
      "--protocol=tcp", "--address=0.0.0.0:\(isolation.port)", "--errorlogfile=/dev/stderr",
    ]
    container.append(("args", .sequence((manifest.args + contract).map(YAMLNode.string))))
    var environment = manifest.environment.sorted { $0.key < $1.key }.map { pair in
      YAMLNode.mapping([("name", .string(pair.key)), ("value", .string(pair.value))])
    }
    environment.append(.mapping([("name", .string("DECKHAND_PLUGIN_NAME")), ("value", .string(manifest.name))]))
    container.append(("env", .sequence(environment)))
    container.append(
      (
        "ports",
        .sequence([
          .mapping([
            ("name", .string("grpc")), ("containerPort", .integer(isolation.port)), ("protocol", .string("TCP")),
          ])
        ])
      ))
    var limits: [(String, YAMLNode)] = []
    if let cpu = manifest.limits.cpuPercent { limits.append(("cpu", .string("\(cpu * 10)m"))) }
    if let memory = manifest.limits.memoryMB { limits.append(("memory", .string("\(memory)Mi"))) }
    if !limits.isEmpty {
      container.append(("resources", .mapping([("limits", .mapping(limits)), ("requests", .mapping(limits))])))
    }
    let period = Self.seconds(manifest.health.interval)
    let timeout = Self.seconds(manifest.health.timeout)
    func probe(_ service: String, failures: Int, period: Int) -> YAMLNode {
      .mapping([
        ("grpc", .mapping([("port", .integer(isolation.port)), ("service", .string(service))])),
        ("periodSeconds", .integer(period)), ("timeoutSeconds", .integer(timeout)),
        ("failureThreshold", .integer(failures)),
      ])
    }
    container.append(
      ("startupProbe", probe("plugin", failures: max(1, Self.seconds(manifest.timeouts.start)), period: 1)))
    container.append(
      ("readinessProbe", probe(Self.readinessService, failures: manifest.health.failures, period: period)))
    container.append(("livenessProbe", probe("plugin", failures: manifest.health.failures, period: period)))
    var security: [(String, YAMLNode)] = [
      ("privileged", .bool(false)), ("capabilities", .mapping([("drop", .sequence([.string("ALL")]))])),
    ]
    if isolation.noNewPrivileges { security.append(("allowPrivilegeEscalation", .bool(false))) }
    if isolation.mountNamespace && !isolation.readonlyPaths.isEmpty {
      // Read-only paths in a private mount namespace: in a pod, the root
      // file system is read-only and only the state and /tmp are writable.
      security.append(("readOnlyRootFilesystem", .bool(true)))
    }
    container.append(("securityContext", .mapping(security)))
    container.append(
      (
        "volumeMounts",
        .sequence([
          .mapping([("name", .string("state")), ("mountPath", .string(Self.stateDirectory))]),
          .mapping([("name", .string("tmp")), ("mountPath", .string("/tmp"))]),
        ])
      ))

    return .mapping([
      ("apiVersion", .string("v1")), ("kind", .string("Pod")), ("metadata", metadata(annotations: annotations)),
      (
        "spec",
        .mapping([
          ("restartPolicy", .string("Always")),
          ("terminationGracePeriodSeconds", .integer(Self.seconds(manifest.timeouts.stop))),
          ("automountServiceAccountToken", .bool(false)), ("enableServiceLinks", .bool(false)),
          ("hostNetwork", .bool(false)), ("hostPID", .bool(false)), ("hostIPC", .bool(false)),
          ("securityContext", .mapping(podSecurity)),
          ("containers", .sequence([.mapping(container)])),
          (
            "volumes",
            .sequence([
              .mapping([("name", .string("state")), ("emptyDir", .mapping([]))]),
              .mapping([("name", .string("tmp")), ("emptyDir", .mapping([]))]),
            ])
          ),
        ])
      ),
    ])
  }

  func service() -> YAMLNode {
    .mapping([
      ("apiVersion", .string("v1")), ("kind", .string("Service")), ("metadata", metadata()),
      (
        "spec",
        .mapping([
          ("type", .string("ClusterIP")), ("selector", selector),
          (
            "ports",
            .sequence([
              .mapping([
                ("name", .string("grpc")), ("port", .integer(manifest.isolation.port)),
                ("targetPort", .string("grpc")), ("protocol", .string("TCP")), ("appProtocol", .string("grpc")),
              ])
            ])
          ),
        ])
      ),
    ])
  }

  /// `network: "none"`: no egress at all, ingress only to the plugin's port.
  func networkPolicy() -> YAMLNode {
    .mapping([
      ("apiVersion", .string("networking.k8s.io/v1")), ("kind", .string("NetworkPolicy")), ("metadata", metadata()),
      (
        "spec",
        .mapping([
          ("podSelector", .mapping([("matchLabels", selector)])),
          ("policyTypes", .sequence([.string("Ingress"), .string("Egress")])),
          (
            "ingress",
            .sequence([
              .mapping([
                (
                  "ports",
                  .sequence([.mapping([("port", .integer(manifest.isolation.port)), ("protocol", .string("TCP"))])])
                )
              ])
            ])
          ),
          ("egress", .sequence([])),
        ])
      ),
    ])
  }

  // MARK: Names and numbers

  /// Whole seconds, rounded up, at least 1 (what probe fields accept).
  static func seconds(_ duration: Duration) -> Int {
    let (whole, attoseconds) = duration.components
    return max(1, Int(whole) + (attoseconds > 0 ? 1 : 0))
  }

  /// A DNS-1123 label: lower case letters, digits and `-`, starting and
  /// ending with a letter or digit, at most 63 characters.
  static func dnsLabel(_ text: String) -> String {
    var label = String(
      text.lowercased().map { character -> Character in
        character.isASCII && (character.isLetter || character.isNumber) ? character : "-"
      })
    label = String(label.prefix(63))
    while label.hasSuffix("-") { label.removeLast() }
    while label.hasPrefix("-") { label.removeFirst() }
    return label
  }

  /// A label value: at most 63 of `A-Za-z0-9-_.`, starting and ending
  /// with a letter or digit.
  static func labelValue(_ text: String) -> String {
    var value = String(
      text.map { character -> Character in
        character.isASCII && (character.isLetter || character.isNumber || "-_.".contains(character)) ? character : "-"
      }.prefix(63))
    while let last = value.last, !(last.isLetter || last.isNumber) { value.removeLast() }
    while let first = value.first, !(first.isLetter || first.isNumber) { value.removeFirst() }
    return value
  }
}
