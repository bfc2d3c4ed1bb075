"""The kubeconfig's inline certificates and key never sit in the system temp directory
(issue 10): they are written to a private directory of megatui's own (0700, files 0600)
and removed as soon as the client is built, and connecting again works."""

from __future__ import annotations

import base64
import os
import stat
import tempfile
from pathlib import Path

import aiohttp
import pytest
from faults_helpers import private_tempdir

from megatui.config import Settings
from megatui.lab.cluster import start_lab_cluster
from megatui.sources.kube_client import connect
from megatui.sources.kube_files import private_credentials
from megatui.sources.kubeconfig import KubeError


async def test_connect_leaves_no_credential_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = await start_lab_cluster(tls=True, workdir=tmp_path / "lab", animate=False)
    try:
        temp = private_tempdir(tmp_path, monkeypatch)
        settings = Settings(kubeconfig=str(lab.kubeconfig_path), kube_request_timeout=5.0)
        for _ in range(2):  # the second time: no stale cached path
            client = await connect(settings)
            try:
                resp = await client.get("/api/v1/nodes", [], aiohttp.ClientTimeout(total=5))
                nodes = await resp.json()
                assert len(nodes["items"]) == 4  # mutual TLS worked with those files
            finally:
                await client.close()
            assert list(temp.iterdir()) == []
    finally:
        await lab.stop()


def test_the_private_files_are_the_decoded_data_and_private(tmp_path: Path) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    cluster = {"server": "https://x", "certificate-authority-data": base64.b64encode(pem).decode()}
    user = {"client-key-data": base64.b64encode(b"key").decode(), "token": "t"}
    with private_credentials(cluster, user) as directory:
        assert Path(directory).parent == Path(tempfile.gettempdir())
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        assert Path(cluster["certificate-authority"]).read_bytes() == pem
        assert Path(user["client-key"]).read_bytes() == b"key"
        assert stat.S_IMODE(os.stat(user["client-key"]).st_mode) == 0o600
        assert "certificate-authority-data" not in cluster and user["token"] == "t"
    assert not Path(directory).exists()


async def test_bad_inline_data_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    temp = private_tempdir(tmp_path, monkeypatch)
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1',"
        " certificate-authority-data: 'not base64!'}}]\n"
        "users: [{name: u, user: {}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    with pytest.raises(KubeError, match=r"^invalid credentials in kubeconfig .*: "):
        await connect(Settings(kubeconfig=str(config)))
    assert list(temp.iterdir()) == []
