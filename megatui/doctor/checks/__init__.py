"""Every doctor check, in report order, with what each needs."""

from __future__ import annotations

from megatui.doctor.checks.argocd import (
    check_applications,
    check_argocd_components,
    check_argocd_namespace,
)
from megatui.doctor.checks.docker import check_docker_daemon, check_kind_network, check_kind_nodes
from megatui.doctor.checks.kube import check_kube_api, check_kubeconfig, check_nodes
from megatui.doctor.checks.orchard import (
    check_controller,
    check_credentials,
    check_failed_vms,
    check_pending_vms,
    check_workers,
)
from megatui.doctor.checks.orchard_pod import check_controller_pod
from megatui.doctor.checks.remote import check_keychain, check_remote_connection
from megatui.doctor.checks.system import check_os, check_python, check_ssh_agent, check_terminal
from megatui.doctor.checks.tart import check_ssh_logins, check_tart, check_vms_boot, check_vms_exist
from megatui.doctor.runner import Check

CHECKS: tuple[Check, ...] = (
    Check("platform.os", check_os),
    Check("platform.python", check_python),
    Check("platform.terminal", check_terminal),
    Check("platform.ssh-agent", check_ssh_agent),
    Check("remote.connection", check_remote_connection),
    Check("remote.keychain", check_keychain, via_host=True),
    Check("docker.daemon", check_docker_daemon, via_host=True),
    Check("docker.kind-network", check_kind_network, ("docker.daemon",)),
    Check("docker.kind-nodes", check_kind_nodes, ("docker.daemon",)),
    Check("kubernetes.config", check_kubeconfig, via_host=True),
    Check("kubernetes.api", check_kube_api, ("kubernetes.config",)),
    Check("kubernetes.nodes", check_nodes, ("kubernetes.api",)),
    Check("argocd.namespace", check_argocd_namespace, ("kubernetes.api",)),
    Check("argocd.components", check_argocd_components, ("argocd.namespace",)),
    Check("argocd.applications", check_applications, ("argocd.namespace",)),
    Check("tart.installed", check_tart, via_host=True),
    Check("tart.vms", check_vms_exist, ("tart.installed",)),
    Check("tart.vms-boot", check_vms_boot, ("tart.installed",)),
    Check("tart.ssh-logins", check_ssh_logins, ("tart.installed",)),
    # The controller's Pod is in the cluster whether or not megatui is told of it.
    Check("orchard.controller-pod", check_controller_pod, ("kubernetes.api",)),
    Check("orchard.controller", check_controller),
    Check("orchard.credentials", check_credentials, ("orchard.controller",)),
    Check("orchard.workers", check_workers, ("orchard.credentials",)),
    Check("orchard.vms-failed", check_failed_vms, ("orchard.credentials",)),
    Check("orchard.vms-pending", check_pending_vms, ("orchard.credentials",)),
)
