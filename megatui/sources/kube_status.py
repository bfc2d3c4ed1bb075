"""kubectl's display rules for nodes, pods and Argo CD Applications, over plain JSON dicts.

Everything here is a pure function of the wire format (camelCase keys, exactly what the API
server sends), so the list/watch code in `kube.py`, the lab's fake API server and the tests
all share one implementation. No I/O and no `kubernetes` client import: converting a watch
event must not pay for building pydantic models.

The pod columns follow `printPod` in kubernetes/kubernetes
`pkg/printers/internalversion/printers.go` (docs/facts/kubernetes.md §13) step by step, the
node columns `printNode` (§11.7), and durations apimachinery's `duration.HumanDuration`.

Missing fields are read the way Go reads them: an absent or null object is a nil pointer, an
absent string is "" and an absent number is 0. A value of the wrong JSON type (a `status`
that is a string, a list item that is not an object) raises ShapeError naming its path: the
data comes from outside and is not trusted until its shape is checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from megatui.model import Application, ArgoSummary, Node, Pod

__all__ = [
    "ARGOCD_COMPONENTS",
    "STANDARD_INSTALL_MIN_COMPONENTS",
    "ShapeError",
    "age",
    "application_row",
    "argocd_summary",
    "human_duration",
    "node_row",
    "object_key",
    "parse_time",
    "pod_row",
    "resource_version",
]

#: The 7 workloads of Argo CD's standard `manifests/install.yaml`, as their pods'
#: `app.kubernetes.io/name` label spells them (docs/facts/kubernetes.md §12.1).
ARGOCD_COMPONENTS: Final[tuple[str, ...]] = (
    "argocd-application-controller",
    "argocd-applicationset-controller",
    "argocd-dex-server",
    "argocd-notifications-controller",
    "argocd-redis",
    "argocd-repo-server",
    "argocd-server",
)

#: How many of the 7 component names must appear before the namespace counts as a standard
#: install. A majority tolerates a component whose pods are all gone (deleted, evicted)
#: while keeping a namespace with one or two stray Argo CD pods from claiming "n/7".
STANDARD_INSTALL_MIN_COMPONENTS: Final = 4

# The HA manifest labels its Redis pods argocd-redis-ha and argocd-redis-ha-haproxy instead of
# argocd-redis; there "7 components" would report a healthy Redis as missing.
_HA_COMPONENT_PREFIX: Final = "argocd-redis-ha"
_ARGOCD_COMPONENT_SET: Final = frozenset(ARGOCD_COMPONENTS)

_EMPTY: Final[Mapping[str, Any]] = {}
_NO_NAMES: Final[frozenset[str]] = frozenset()

# metav1.Time.IsZero(): Go's zero time (0001-01-01T00:00:00Z) means "not set".
_GO_ZERO_TIME: Final = -62135596800.0

_ROLE_LABEL_PREFIX: Final = "node-role.kubernetes.io/"
_ROLE_LABEL: Final = "kubernetes.io/role"
_COMPONENT_LABEL: Final = "app.kubernetes.io/name"
_NODE_UNREACHABLE_REASON: Final = "NodeLost"  # pkg/util/node.NodeUnreachablePodReason
_TERMINAL_PHASES: Final = frozenset(("Succeeded", "Failed"))

_UNKNOWN: Final = "Unknown"
_NONE: Final = "<none>"


def parse_time(s: str | None) -> float | None:
    """An RFC 3339 timestamp as epoch seconds; None when absent, unparsable or Go's zero time.

    A timestamp without an offset is taken as UTC (the API server always writes "Z").
    """
    if not s:
        return None
    try:
        parsed = datetime.fromisoformat(s)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    epoch = parsed.timestamp()
    return None if epoch == _GO_ZERO_TIME else epoch


# lab/kube_api.py transcribes this again on purpose: the lab plays the API server and
# must not import the rules it tests, so a slip here cannot hide behind the same slip
# there. Its steps stay one `if` each, as Go writes them, to be checked line by line.
def human_duration(seconds: float) -> str:
    """apimachinery's `duration.HumanDuration`: about 2-3 significant figures.

    Up to 2 minutes in seconds ("119s"), then minutes with seconds below 10 minutes ("5m30s"),
    minutes up to 3 hours ("179m"), hours with minutes below 8 hours ("7h59m"), hours up to
    2 days ("47h"), days with hours below 8 days ("7d23h"), days up to 2 years ("729d"),
    years with days below 8 years ("7y364d"), then years. A clock skew of up to 1 s in the
    future reads "0s"; more reads "<invalid>".
    """
    # Go truncates d.Seconds() toward zero, which int() also does; every later unit is an
    # integer division of the duration, which equals a division of the whole seconds.
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 60 * 2:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if rest == 0 else f"{hours // 24 // 365}y{rest}d"
    return f"{hours // 24 // 365}y"


def age(created: float | None, now: float) -> str:
    """kubectl's AGE column (`translateTimestampSince`)."""
    if created is None:
        return "<unknown>"
    return human_duration(now - created)


class ShapeError(ValueError):
    """Outside JSON of a type the display rules cannot read. str() is the path of the
    offending value and what is wrong with it, e.g. "status.conditions[2] is not an object"."""

    def within(self, prefix: str) -> ShapeError:
        """The same problem, one level further out (prefix "spec" or "containers[3]")."""
        return ShapeError(f"{prefix}.{self}")


# Readers of one field: an absent or null value reads as Go reads it (nil, "", 0); any
# other value of the wrong JSON type raises ShapeError naming the key. `type(x) is`
# rather than isinstance: json.loads builds exactly these types, and it is the hot path
# of a 5,000-pod list.


def _obj(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        return _EMPTY
    if type(value) is dict:
        return value
    raise ShapeError(f"{key} is not an object")


def _objs(parent: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = parent.get(key)
    if value is None:
        return []
    if type(value) is not list:
        raise ShapeError(f"{key} is not a list")
    for index, item in enumerate(value):
        if type(item) is not dict:
            raise ShapeError(f"{key}[{index}] is not an object")
    return value


def _str(parent: Mapping[str, Any], key: str) -> str:
    value = parent.get(key)
    if value is None:
        return ""
    if type(value) is str:
        return value
    raise ShapeError(f"{key} is not a string")


def _int(parent: Mapping[str, Any], key: str) -> int:
    value = parent.get(key)
    if value is None:
        return 0
    if type(value) is int:
        return value
    raise ShapeError(f"{key} is not an integer")


def _labels(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    labels = _obj(meta, "labels")
    for key, value in labels.items():
        if type(value) is not str:
            raise ShapeError(f"{key} is not a string").within("labels")
    return labels


def _sections(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    """An object's metadata, spec and status, each an object (absent reads as empty)."""
    return _obj(obj, "metadata"), _obj(obj, "spec"), _obj(obj, "status")


def _names(meta: Mapping[str, Any]) -> tuple[str, str]:
    """`metadata.name` and `metadata.namespace` ("" when absent)."""
    try:
        return _str(meta, "name"), _str(meta, "namespace")
    except ShapeError as exc:
        raise exc.within("metadata") from None


def object_key(obj: Mapping[str, Any], *, namespaced: bool) -> str:
    """The cache key of an object: its name, or "namespace/name"."""
    meta = _obj(obj, "metadata")
    try:
        name = _str(meta, "name")
        return f"{_str(meta, 'namespace')}/{name}" if namespaced else name
    except ShapeError as exc:
        raise exc.within("metadata") from None


def resource_version(obj: Mapping[str, Any]) -> str:
    """`metadata.resourceVersion`, "" when absent."""
    meta = _obj(obj, "metadata")
    try:
        return _str(meta, "resourceVersion")
    except ShapeError as exc:
        raise exc.within("metadata") from None


def _last_finished(status: Mapping[str, Any]) -> float | None:
    """When a container last terminated (`lastState.terminated.finishedAt`), if it did."""
    last_state = _obj(status, "lastState")
    if not last_state:
        return None
    try:
        terminated = _obj(last_state, "terminated")
    except ShapeError as exc:
        raise exc.within("lastState") from None
    if not terminated:
        return None
    try:
        return parse_time(_str(terminated, "finishedAt"))
    except ShapeError as exc:
        raise exc.within("lastState.terminated") from None


def _check_strings(items: list[Mapping[str, Any]], where: str, keys: tuple[str, ...]) -> None:
    """Each item's `keys` are strings or absent (`where` names the list in errors)."""
    for index, item in enumerate(items):
        try:
            for key in keys:
                _str(item, key)
        except ShapeError as exc:
            raise exc.within(f"{where}[{index}]") from None


def _check_conditions(conditions: list[Mapping[str, Any]]) -> None:
    _check_strings(conditions, "conditions", ("type", "status", "reason"))


def _condition_true(conditions: Iterable[Mapping[str, Any]], kind: str) -> bool:
    """Whether the first condition of this type is "True" (`isPodInitializedConditionTrue`)."""
    for condition in conditions:
        if condition.get("type") == kind:
            return bool(condition.get("status") == "True")
    return False


def _any_condition_true(conditions: Iterable[Mapping[str, Any]], kind: str) -> bool:
    """Whether some condition of this type is "True" (`hasPodReadyCondition`)."""
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


class _ContainerState:
    """One container status, its fields read and checked once."""

    __slots__ = (
        "exit_code",
        "finished",
        "name",
        "ready",
        "restarts",
        "running",
        "signal",
        "started",
        "term_reason",
        "terminated",
        "waiting_reason",
    )

    def __init__(self, status: Mapping[str, Any]) -> None:
        self.name = _str(status, "name")
        self.restarts = _int(status, "restartCount")
        self.ready = bool(status.get("ready"))
        self.started = status.get("started") is True
        self.finished = _last_finished(status)
        state = _obj(status, "state")
        try:
            waiting = _obj(state, "waiting")
            terminated = state.get("terminated")
            self.terminated = terminated is not None
            term = _obj(state, "terminated")
            self.running = state.get("running") is not None
        except ShapeError as exc:
            raise exc.within("state") from None
        try:
            self.waiting_reason = _str(waiting, "reason")
        except ShapeError as exc:
            raise exc.within("state.waiting") from None
        try:
            self.term_reason = _str(term, "reason")
            self.signal = _int(term, "signal")
            self.exit_code = _int(term, "exitCode")
        except ShapeError as exc:
            raise exc.within("state.terminated") from None


def _containers(status: Mapping[str, Any], key: str) -> list[_ContainerState]:
    rows = []
    for index, container in enumerate(_objs(status, key)):
        try:
            rows.append(_ContainerState(container))
        except ShapeError as exc:
            raise exc.within(f"{key}[{index}]") from None
    return rows


def pod_row(obj: dict[str, Any], now: float) -> Pod:
    """A pod as `kubectl get pods` shows it: kubectl's printPod, step for step (§13).

    RESTARTS carries "(<age> ago)" against `now` when a counted container has a
    `lastState.terminated.finishedAt`. NODE is "<none>" while the pod is unscheduled, as in
    `-o wide`. `running_ready` is true when the phase and the STATUS are both Running and
    every container counted in READY is ready. Raises ShapeError for a field of the wrong
    JSON type.
    """
    meta, spec, status = _sections(obj)
    name, namespace = _names(meta)
    try:
        created = parse_time(_str(meta, "creationTimestamp"))
        deleting = bool(meta.get("deletionTimestamp"))
        labels = _labels(meta)
    except ShapeError as exc:
        raise exc.within("metadata") from None
    try:
        node_name = _str(spec, "nodeName")
        containers = _objs(spec, "containers")
        init_specs = _objs(spec, "initContainers")
        _check_strings(init_specs, "initContainers", ("name", "restartPolicy"))
    except ShapeError as exc:
        raise exc.within("spec") from None
    try:
        phase = _str(status, "phase")
        pod_reason = _str(status, "reason")
        conditions = _objs(status, "conditions")
        _check_conditions(conditions)
        init_statuses = _containers(status, "initContainerStatuses")
        statuses = _containers(status, "containerStatuses")
    except ShapeError as exc:
        raise exc.within("status") from None

    reason = pod_reason or phase
    for condition in conditions:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    total = len(containers)
    ready = 0
    sidecars = _NO_NAMES
    if init_specs:
        sidecar_list = [c.get("name") for c in init_specs if c.get("restartPolicy") == "Always"]
        total += len(sidecar_list)
        sidecars = frozenset(n for n in sidecar_list if n is not None)

    restarts = 0
    sidecar_restarts = 0
    last_restart: float | None = None
    last_sidecar_restart: float | None = None
    initializing = False
    for index, container in enumerate(init_statuses):
        count = container.restarts
        restarts += count
        finished = container.finished
        if finished is not None and (last_restart is None or finished > last_restart):
            last_restart = finished
        is_sidecar = container.name in sidecars
        if is_sidecar:
            sidecar_restarts += count
            if finished is not None and (
                last_sidecar_restart is None or finished > last_sidecar_restart
            ):
                last_sidecar_restart = finished

        if container.terminated and not container.exit_code:
            continue
        if is_sidecar and container.started:
            if container.ready:
                ready += 1
            continue
        if container.terminated:
            if container.term_reason:
                reason = "Init:" + container.term_reason
            elif container.signal:
                reason = f"Init:Signal:{container.signal}"
            else:
                reason = f"Init:ExitCode:{container.exit_code}"
        else:
            wait_reason = container.waiting_reason
            if wait_reason and wait_reason != "PodInitializing":
                reason = "Init:" + wait_reason
            else:
                reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized"):
        # Once the pod is initialised, only sidecars' restarts stay in the count.
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        # Reversed, so that the first container's reason is the one left standing.
        for container in reversed(statuses):
            restarts += container.restarts
            finished = container.finished
            if finished is not None and (last_restart is None or finished > last_restart):
                last_restart = finished
            if container.waiting_reason:
                reason = container.waiting_reason
            elif container.terminated:
                if container.term_reason:
                    reason = container.term_reason
                elif container.signal:
                    reason = f"Signal:{container.signal}"
                else:
                    reason = f"ExitCode:{container.exit_code}"
            elif container.ready and container.running:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _any_condition_true(conditions, "Ready") else "NotReady"

    if deleting:
        if pod_reason == _NODE_UNREACHABLE_REASON:
            reason = _UNKNOWN
        elif phase not in _TERMINAL_PHASES:
            reason = "Terminating"

    if restarts != 0 and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"
    else:
        restarts_text = str(restarts)

    return Pod(
        name=name,
        namespace=namespace,
        ready=f"{ready}/{total}",
        status=reason,
        restarts=restarts_text,
        node=node_name or _NONE,
        created=created,
        component=labels.get(_COMPONENT_LABEL) or None,
        running_ready=phase == "Running" and reason == "Running" and 0 < total == ready,
    )


def node_row(obj: dict[str, Any]) -> Node:
    """A node as `kubectl get nodes` shows it (printNode, §11.7), plus its InternalIP.
    Raises ShapeError for a field of the wrong JSON type."""
    meta, spec, status = _sections(obj)
    try:
        name = _str(meta, "name")
        created = parse_time(_str(meta, "creationTimestamp"))
        labels = _labels(meta)
    except ShapeError as exc:
        raise exc.within("metadata") from None
    try:
        conditions = _objs(status, "conditions")
        _check_conditions(conditions)
        addresses = _objs(status, "addresses")
        for index, address in enumerate(addresses):
            try:
                _str(address, "type")
                _str(address, "address")
            except ShapeError as exc:
                raise exc.within(f"addresses[{index}]") from None
        node_info = _obj(status, "nodeInfo")
        try:
            version = _str(node_info, "kubeletVersion")
        except ShapeError as exc:
            raise exc.within("nodeInfo") from None
    except ShapeError as exc:
        raise exc.within("status") from None

    # printNode builds a map by condition type, so the last Ready condition wins.
    ready: str | None = None
    for condition in conditions:
        if condition.get("type") == "Ready":
            ready = condition.get("status") or ""
    if ready is None:
        text = _UNKNOWN
    elif ready == "True":
        text = "Ready"
    else:
        text = "NotReady"
    if spec.get("unschedulable"):
        text += ",SchedulingDisabled"

    roles: set[str] = set()
    for key, value in labels.items():
        if key.startswith(_ROLE_LABEL_PREFIX):
            role = key[len(_ROLE_LABEL_PREFIX) :]
            if role:
                roles.add(role)
        elif key == _ROLE_LABEL and value:
            roles.add(value)

    internal_ip: str | None = None
    for address in addresses:
        if address.get("type") == "InternalIP":
            internal_ip = address.get("address") or None
            break

    return Node(
        name=name,
        status=text,
        # Python orders str by code point, which is Go's byte order for UTF-8 (sets.List).
        roles=",".join(sorted(roles)) or _NONE,
        version=version,
        created=created,
        internal_ip=internal_ip,
    )


def _short_revision(revision: str) -> str:
    """A git commit SHA cut to 7 characters, as the Argo CD UI shows it; other revisions
    (Helm chart versions, branch names) are already short and stay whole."""
    if len(revision) == 40 and all(c in "0123456789abcdefABCDEF" for c in revision):
        return revision[:7]
    return revision


def application_row(obj: dict[str, Any]) -> Application:
    """An Argo CD Application (§12.2).

    Missing sync and health read "Unknown", as Argo CD itself treats them. A missing
    `operationState` reads "" rather than "Unknown": it means no operation has run yet,
    which is known, not unknown. A missing project reads "default", as Argo CD resolves it.
    The message is the operation's, else the first condition's that has one, else the
    health message.
    The revision is `status.sync.revision`, or the multi-source `revisions` joined by ",".
    Raises ShapeError for a field of the wrong JSON type.
    """
    meta, spec, status = _sections(obj)
    name, namespace = _names(meta)
    try:
        project = _str(spec, "project")
    except ShapeError as exc:
        raise exc.within("spec") from None
    try:
        sync = _obj(status, "sync")
        health = _obj(status, "health")
        operation = _obj(status, "operationState")
        conditions = _objs(status, "conditions")
        _check_strings(conditions, "conditions", ("message",))
    except ShapeError as exc:
        raise exc.within("status") from None
    try:
        sync_status = _str(sync, "status")
        revision = _str(sync, "revision")
        revisions = sync.get("revisions") or []
        if type(revisions) is not list or any(type(r) is not str for r in revisions):
            raise ShapeError("revisions is not a list of strings")
    except ShapeError as exc:
        raise exc.within("status.sync") from None
    try:
        health_status = _str(health, "status")
        health_message = _str(health, "message")
    except ShapeError as exc:
        raise exc.within("status.health") from None
    try:
        phase = _str(operation, "phase")
        message = _str(operation, "message")
    except ShapeError as exc:
        raise exc.within("status.operationState") from None

    if not message:
        for condition in conditions:
            message = condition.get("message") or ""
            if message:
                break
    if not message:
        message = health_message

    if revision:
        revision = _short_revision(revision)
    else:
        revision = ",".join(_short_revision(r) for r in revisions if r)

    return Application(
        name=name,
        namespace=namespace,
        project=project or "default",
        sync=sync_status or _UNKNOWN,
        health=health_status or _UNKNOWN,
        operation=phase,
        message=message,
        revision=revision,
    )


def argocd_summary(pods: Iterable[Pod]) -> ArgoSummary:
    """How many of the 7 standard components have a Running, fully ready pod.

    Pass the pods of the Argo CD namespace. A component counts as ready when any of its pods
    (a rollout may run two) is `running_ready`; `missing` lists the others in
    ARGOCD_COMPONENTS order, so `ready + len(missing) == total`. `standard_install` is
    true when at least STANDARD_INSTALL_MIN_COMPONENTS of the names have a pod at all and
    no HA-only Redis pod is present.
    """
    present: set[str] = set()
    ready: set[str] = set()
    high_availability = False
    for pod in pods:
        component = pod.component
        if component is None:
            continue
        if component in _ARGOCD_COMPONENT_SET:
            present.add(component)
            if pod.running_ready:
                ready.add(component)
        elif component.startswith(_HA_COMPONENT_PREFIX):
            high_availability = True
    return ArgoSummary(
        standard_install=len(present) >= STANDARD_INSTALL_MIN_COMPONENTS and not high_availability,
        ready=len(ready),
        total=len(ARGOCD_COMPONENTS),
        missing=tuple(c for c in ARGOCD_COMPONENTS if c not in ready),
    )
