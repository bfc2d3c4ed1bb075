"""The Kubernetes API client a kubeconfig describes, and the outer shape of its answers.

`connect` builds the client for the chosen context (kubeconfig.py holds kubectl's rules
for choosing it); `parse_list` and `status_message` read a list body and an error body
without trusting their shape. The list-and-watch engine that uses them is kube.py.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from megatui.config import Settings
from megatui.sources.kube_files import private_credentials
from megatui.sources.kube_status import ShapeError, resource_version
from megatui.sources.kubeconfig import KubeconfigError, KubeError, Signature, choose_cluster
from megatui.text import one_line

#: An error line is cut to this many characters.
MAX_LINE = 300


class BadShape(KubeError):
    """The API server sent data of an unexpected shape: fail the resource, back off,
    and start it over with a fresh list."""

    def __init__(self, resource: str, detail: str) -> None:
        super().__init__(f"{resource}: unexpected shape: {detail}")


@dataclass(slots=True)
class KubeClient:
    api: Any  # kubernetes.aio.client.ApiClient (untyped)
    context: str
    server: str
    signature: Signature


async def connect(settings: Settings) -> KubeClient:
    """An ApiClient for the chosen context of the merged kubeconfig."""
    from kubernetes.aio.config import ConfigException, new_client_from_config_dict

    chosen = await asyncio.to_thread(choose_cluster, settings)
    where = chosen.where
    try:
        # Certificates as files in megatui's own temp dir, gone once the client is built.
        with private_credentials(chosen.cluster, chosen.user) as temp_dir:
            api = await new_client_from_config_dict(  # type: ignore[no-untyped-call]
                config_dict=chosen.config, context=chosen.context, temp_file_path=temp_dir
            )
            # The aiohttp session and its TLS context are built lazily; build them now
            # so that a bad certificate is a configuration error, not a request error.
            api.rest_client.pool_manager = api.rest_client._create_pool_manager()
    except ConfigException as exc:
        raise KubeconfigError(f"invalid kubeconfig {where}: {exc}") from None
    except (OSError, ValueError) as exc:
        # ssl.SSLError is an OSError: unreadable or mismatched certificate data.
        raise KubeconfigError(f"invalid credentials in kubeconfig {where}: {exc}") from None
    except Exception as exc:
        # The client reads the kubeconfig's entries without checking their types (a
        # `user` that is a string raises AttributeError): still the file's fault.
        detail = one_line(f"{type(exc).__name__}: {exc}", MAX_LINE)
        raise KubeconfigError(f"invalid kubeconfig {where}: {detail}") from None
    return KubeClient(
        api=api, context=chosen.context, server=chosen.server, signature=chosen.signature
    )


def status_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text.splitlines()[0][:200] if text else ""
    if isinstance(data, dict):
        return str(data.get("message") or data.get("reason") or "")
    return ""


def parse_list(name: str, body: bytes) -> tuple[list[Any], str]:
    """A list body's items and resourceVersion, its outer shape checked."""
    try:
        data = json.loads(body)
    except ValueError:
        raise BadShape(name, "the list is not valid JSON") from None
    if type(data) is not dict:
        raise BadShape(name, "the list is not an object")
    items = data.get("items")
    if items is None:
        items = []
    elif type(items) is not list:
        raise BadShape(name, "items is not a list")
    try:
        rv = resource_version(data)
    except ShapeError as exc:
        raise BadShape(name, str(exc)) from None
    if not rv:
        raise BadShape(name, "the list has no metadata.resourceVersion")
    return items, rv
