"""The kubeconfig's user entry as the official client read it (kubernetes/aio/config/
kube_config.py, 37.0.2), now that megatui builds its requests itself: `token` before
`tokenFile` (relative to the kubeconfig), `username`/`password` as basic auth, an `exec`
plugin's ExecCredential, and one line for what is not supported or fails."""

from __future__ import annotations

import base64
import json
import stat
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from megatui.config import Settings
from megatui.lab.kube_api import FakeKubeAPI
from megatui.lab.kube_certs import kubeconfig_dict, write_kubeconfig
from megatui.sources.kube_client import connect, encode_query
from megatui.sources.kubeconfig import KubeconfigError

TIMEOUT = aiohttp.ClientTimeout(total=5)


def _config(tmp_path: Path, url: str, user: dict[str, Any]) -> Settings:
    doc = kubeconfig_dict(url)
    doc["users"][0]["user"] = user
    path = write_kubeconfig(tmp_path / "kube" / "config", doc)
    return Settings(kubeconfig=str(path))


async def _authorization(settings: Settings, server: FakeKubeAPI) -> tuple[int, str | None]:
    client = await connect(settings)
    try:
        resp = await client.get("/api/v1/nodes", [], TIMEOUT)
        resp.release()
    finally:
        await client.close()
    return resp.status, server.requests[-1].authorization


@pytest.fixture
async def server() -> Any:
    api = FakeKubeAPI(bookmark_interval=None)
    api.require_auth = True
    api.tokens = {"good"}
    await api.start()
    try:
        yield api
    finally:
        await api.stop()


async def test_token_file_relative_to_the_kubeconfig(tmp_path: Path, server: FakeKubeAPI) -> None:
    (tmp_path / "kube").mkdir(exist_ok=True)
    (tmp_path / "kube" / "token").write_text("good\n")
    settings = _config(tmp_path, server.url, {"tokenFile": "token"})
    assert await _authorization(settings, server) == (200, "Bearer good")


async def test_token_wins_over_token_file(tmp_path: Path, server: FakeKubeAPI) -> None:
    (tmp_path / "kube").mkdir(exist_ok=True)
    (tmp_path / "kube" / "token").write_text("wrong\n")
    settings = _config(tmp_path, server.url, {"token": "good", "tokenFile": "token"})
    assert await _authorization(settings, server) == (200, "Bearer good")


async def test_basic_auth(tmp_path: Path, server: FakeKubeAPI) -> None:
    settings = _config(tmp_path, server.url, {"username": "admin", "password": "pw"})
    status, authorization = await _authorization(settings, server)
    assert status == 401  # the fake server takes bearer tokens only
    assert authorization == "Basic " + base64.b64encode(b"admin:pw").decode()


def _plugin(tmp_path: Path, body: str) -> str:
    path = tmp_path / "plugin.py"
    path.write_text(f"#!{sys.executable}\nimport json, os, sys\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


async def test_exec_plugin_token(tmp_path: Path, server: FakeKubeAPI) -> None:
    seen = tmp_path / "seen.json"
    plugin = _plugin(
        tmp_path,
        f"open({str(seen)!r}, 'w').write(json.dumps([sys.argv[1:], os.environ['MY_ENV'],"
        " json.loads(os.environ['KUBERNETES_EXEC_INFO'])]))\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',"
        " 'kind': 'ExecCredential', 'status': {'token': 'good'}}))",
    )
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": plugin,
            "args": ["get-token", "--cluster", "kind"],
            "env": [{"name": "MY_ENV", "value": "x"}],
        },
        "token": "wrong",  # the plugin's answer wins
    }
    settings = _config(tmp_path, server.url, user)
    assert await _authorization(settings, server) == (200, "Bearer good")
    args, env, info = json.loads(seen.read_text())
    assert args == ["get-token", "--cluster", "kind"] and env == "x"
    assert info["kind"] == "ExecCredential"
    assert info["apiVersion"] == "client.authentication.k8s.io/v1"


async def test_failing_exec_plugin_is_one_line(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path, "print('token expired, run login', file=sys.stderr); sys.exit(3)")
    settings = _config(tmp_path, "http://127.0.0.1:1", {"exec": {"command": plugin}})
    with pytest.raises(KubeconfigError, match=r"^exec plugin .* failed: token expired, run login$"):
        await connect(settings)


async def test_missing_exec_plugin_is_one_line(tmp_path: Path) -> None:
    settings = _config(
        tmp_path, "http://127.0.0.1:1", {"exec": {"command": "megatui-no-such-plugin"}}
    )
    with pytest.raises(KubeconfigError, match=r"^exec plugin megatui-no-such-plugin in .*: "):
        await connect(settings)


async def test_auth_provider_is_refused_in_one_line(tmp_path: Path) -> None:
    settings = _config(
        tmp_path, "http://127.0.0.1:1", {"auth-provider": {"name": "gcp", "config": {}}}
    )
    with pytest.raises(KubeconfigError, match=r"auth-provider 'gcp' is not supported"):
        await connect(settings)


def test_query_is_written_as_the_official_client_wrote_it() -> None:
    query = [("watch", True), ("timeoutSeconds", 30), ("sinceTime", "2026-01-01T00:00:00Z")]
    assert encode_query(query) == "watch=true&timeoutSeconds=30&sinceTime=2026-01-01T00%3A00%3A00Z"



async def test_a_wrong_type_is_one_line_naming_the_file(tmp_path: Path) -> None:
    doc = kubeconfig_dict("https://127.0.0.1:1")
    doc["clusters"][0]["cluster"]["tls-server-name"] = ["not", "a", "name"]
    path = write_kubeconfig(tmp_path / "kubeconfig", doc)
    with pytest.raises(KubeconfigError, match=r"^invalid kubeconfig .*kubeconfig: tls-server-name"):
        await connect(Settings(kubeconfig=str(path)))
