"""KubeSource's set-up and its one-line errors: kubeconfig loading, contexts, reachability,
credentials, mutual TLS as Kind does it, and the tunnelled-server override."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]
from kube_timing import timed_settings
from test_kube_watch import FAST, Recorder, kubeconfig_for, loaded, make_source, populate, running

from megatui.config import Settings
from megatui.lab.cluster import start_lab_cluster
from megatui.lab.kube_api import PODS, FakeKubeAPI
from megatui.lab.kube_certs import (
    generate_certs,
    kubeconfig_dict,
    server_ssl_context,
    write_kubeconfig,
)
from megatui.sources.kube_rows import SortedRows
from megatui.sources.kubeconfig import (
    KubeError,
    apply_override,
    kubeconfig_paths,
    load_kubeconfig,
)


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def first_error(rec: Recorder, key: str = "kubernetes") -> str:
    state = await rec.wait_for(lambda s: key in s.statuses and not s.statuses[key].ok)
    status = state.statuses[key]
    assert status.next_retry_at is not None and status.next_retry_at > time.time()
    assert status.updated_at is None  # never had data
    return status.error or ""


# --------------------------------------------------------------------------- kubeconfig


def test_kubeconfig_paths_follow_kubectl_and_read_the_environment_at_call_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = str(Path.home())
    assert kubeconfig_paths(Settings(), {}) == [os.path.join(home, ".kube/config")]
    assert kubeconfig_paths(Settings(), {"KUBECONFIG": "/a:/b"}) == ["/a", "/b"]
    assert kubeconfig_paths(Settings(kubeconfig="~/k"), {"KUBECONFIG": "/a"}) == [
        os.path.join(home, "k")
    ]
    # Set after `kubernetes` was imported (trap 5): still honoured.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "late"))
    assert kubeconfig_paths(Settings()) == [str(tmp_path / "late")]


def test_merged_kubeconfigs_first_name_and_first_current_context_win(tmp_path: Path) -> None:
    first = kubeconfig_dict("https://127.0.0.1:1", cluster="one")
    first["users"][0]["user"] = {"client-certificate": "pki/admin.crt", "client-key": "k.pem"}
    second = kubeconfig_dict("https://127.0.0.1:2", cluster="one")
    second["contexts"].append({"name": "other", "context": {"cluster": "kind-one"}})
    second["current-context"] = "other"
    a = write_kubeconfig(tmp_path / "a" / "config", first)
    b = write_kubeconfig(tmp_path / "b" / "config", second)
    merged, where = load_kubeconfig([str(a), str(tmp_path / "missing"), str(b)])
    assert merged["current-context"] == "kind-one"
    assert [c["cluster"]["server"] for c in merged["clusters"]] == ["https://127.0.0.1:1"]
    assert [c["name"] for c in merged["contexts"]] == ["kind-one", "other"]
    user = merged["users"][0]["user"]
    assert user["client-certificate"] == str(tmp_path / "a" / "pki" / "admin.crt")
    assert where.endswith("/a/config:" + str(tmp_path / "missing") + ":" + str(b))


def test_a_broken_kubeconfig_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "config"
    bad.write_text("clusters: [\n  - {name: x\n", encoding="utf-8")
    with pytest.raises(KubeError) as info:
        load_kubeconfig([str(bad)])
    assert str(info.value).startswith(f"kubeconfig {bad} is not valid YAML: ")
    assert "\n" not in str(info.value)


def test_the_override_keeps_verifying_the_original_name() -> None:
    cluster = {"server": "https://kind-control-plane:6443"}
    apply_override(cluster, "127.0.0.1:40001")
    assert cluster == {
        "server": "https://127.0.0.1:40001",
        "tls-server-name": "kind-control-plane",
    }
    explicit = {"server": "https://127.0.0.1:6443", "tls-server-name": "api.internal"}
    apply_override(explicit, "https://127.0.0.1:40002")
    assert explicit["tls-server-name"] == "api.internal"
    plain = {"server": "http://127.0.0.1:8080"}
    apply_override(plain, "127.0.0.1:40003")
    assert plain == {"server": "http://127.0.0.1:40003"}


def test_sorted_rows_update_in_place_and_keep_order() -> None:
    rows: SortedRows[str] = SortedRows()
    rows.replace_all([("b", "B"), ("a", "A"), ("d", "D")])
    assert rows.rows() == ("A", "B", "D")
    rows.upsert("c", "C")
    rows.upsert("a", "A2")
    rows.remove("d")
    rows.remove("zz")
    assert rows.rows() == ("A2", "B", "C")
    assert rows.get("b") == "B" and rows.get("x") is None
    assert rows.rows() is rows.rows()  # cached until the next change


# --------------------------------------------------------------------------- errors


async def test_missing_kubeconfig(tmp_path: Path) -> None:
    rec = Recorder()
    missing = tmp_path / "nope" / "config"
    async with running(make_source(missing, rec)):
        assert await first_error(rec) == f"kubeconfig not found: {missing}"
        assert rec.last.statuses["applications"].error == f"kubeconfig not found: {missing}"


async def test_unknown_context(tmp_path: Path) -> None:
    rec = Recorder()
    path = kubeconfig_for(tmp_path, "http://127.0.0.1:1")
    async with running(make_source(path, rec, kube_context="kind-nope")):
        assert await first_error(rec) == f"kube context 'kind-nope' not found in {path}"


async def test_unknown_context_names_the_default_file_with_a_tilde(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    kubeconfig_for(tmp_path / ".kube", "http://127.0.0.1:1").rename(tmp_path / ".kube" / "config")
    rec = Recorder()
    settings = timed_settings(FAST, kube_context="x", kube_request_timeout=1.0)
    from megatui.clock import SystemClock
    from megatui.sources.kube import KubeSource

    async with running(KubeSource(settings, SystemClock(), rec)):
        assert await first_error(rec) == "kube context 'x' not found in ~/.kube/config"


async def test_unreachable_api_server(tmp_path: Path) -> None:
    port = free_port()
    rec = Recorder()
    async with running(make_source(kubeconfig_for(tmp_path, f"http://127.0.0.1:{port}"), rec)):
        error = await first_error(rec)
        assert (
            error == f"cannot reach the API server at http://127.0.0.1:{port}: connection refused"
        )
        # Each resource fails on its own timing: wait for the Applications too.
        assert await first_error(rec, "applications") == error
        assert rec.last.context == "kind-kind"


async def test_the_kubeconfig_from_the_environment_works(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = FakeKubeAPI(bookmark_interval=None)
    populate(server.store)
    await server.start()
    try:
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig_for(tmp_path, server.url)))
        rec = Recorder()
        async with running(make_source("", rec)):
            await rec.wait_for(loaded)
    finally:
        await server.stop()


@pytest.mark.parametrize("token", [None, "wrong"], ids=["no-credentials", "bad-token"])
async def test_unauthorized(tmp_path: Path, token: str | None) -> None:
    server = FakeKubeAPI(bookmark_interval=None)
    server.require_auth = True
    server.tokens = {"good"}
    populate(server.store)
    await server.start()
    try:
        rec = Recorder()
        async with running(make_source(kubeconfig_for(tmp_path, server.url, token=token), rec)):
            error = await first_error(rec)
            assert error == (
                f"unauthorized (401): {server.url} rejected the credentials of context 'kind-kind'"
            )
            await rec.wait_for(lambda s: "applications" in s.statuses)
            assert rec.last.statuses["applications"].error == error
        # And the right token works: credentials go through the official client.
        rec = Recorder()
        async with running(make_source(kubeconfig_for(tmp_path, server.url, token="good"), rec)):
            await rec.wait_for(loaded)
        assert all(
            r.authorization in ("Bearer good", None, "Bearer wrong") for r in server.requests
        )
    finally:
        await server.stop()


async def test_stale_data_stays_when_the_server_goes_away(tmp_path: Path) -> None:
    server = FakeKubeAPI(bookmark_interval=None)
    populate(server.store)
    await server.start()
    rec = Recorder()
    async with running(make_source(kubeconfig_for(tmp_path, server.url), rec)):
        state = await rec.wait_for(loaded)
        good_at = state.statuses["kubernetes"].updated_at
        await server.stop()
        state = await rec.wait_for(lambda s: not s.statuses["kubernetes"].ok)
        assert (state.statuses["kubernetes"].error or "").startswith(
            f"cannot reach the API server at {server.url}"
        )
        assert loaded(state)
        assert state.statuses["kubernetes"].updated_at is not None
        assert good_at is not None
        assert state.statuses["kubernetes"].updated_at >= good_at


async def test_a_rewritten_kubeconfig_is_followed(tmp_path: Path) -> None:
    """Kind recreated the cluster: a new port in the same kubeconfig file."""
    old = FakeKubeAPI(bookmark_interval=None)
    populate(old.store)
    await old.start()
    new = FakeKubeAPI(bookmark_interval=None)
    populate(new.store)
    new.store.delete(PODS, "argocd-server-6c46b7867b-00000", "argocd")
    await new.start()
    path = kubeconfig_for(tmp_path, old.url)
    rec = Recorder()
    try:
        async with running(make_source(path, rec)):
            await rec.wait_for(loaded)
            await old.stop()
            kubeconfig_for(tmp_path, new.url)
            state = await rec.wait_for(lambda s: len(s.pods) == 6 and s.statuses["kubernetes"].ok)
            assert len(new.calls(PODS, watch=False)) == 1
            assert len(state.nodes) == 4
    finally:
        await new.stop()


# --------------------------------------------------------------------------- TLS


async def test_mutual_tls_with_a_kind_shaped_kubeconfig(tmp_path: Path) -> None:
    lab = await start_lab_cluster(tls=True, workdir=tmp_path, animate=False)
    try:
        config = yaml.safe_load(lab.kubeconfig_path.read_text())
        assert config["current-context"] == "kind-kind"
        assert config["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
        assert set(config["users"][0]["user"]) == {"client-certificate-data", "client-key-data"}
        assert lab.kubeconfig_path.stat().st_mode & 0o777 == 0o600

        rec = Recorder()
        async with running(make_source(lab.kubeconfig_path, rec)):
            state = await rec.wait_for(
                lambda s: len(s.nodes) == 4 and len(s.pods) == 7 and len(s.applications) == 3
            )
            assert state.context == "kind-kind"
            assert state.statuses["kubernetes"].ok and state.statuses["applications"].ok
            assert {n.roles for n in state.nodes} == {"control-plane", "<none>"}
            assert state.argocd is not None and state.argocd.missing == ("argocd-repo-server",)
        # No request got in without the client certificate.
        assert lab.api.require_auth
    finally:
        await lab.stop()


async def test_a_tls_client_without_a_certificate_is_unauthorized(tmp_path: Path) -> None:
    lab = await start_lab_cluster(tls=True, workdir=tmp_path, animate=False)
    try:
        config = yaml.safe_load(lab.kubeconfig_path.read_text())
        config["users"][0]["user"] = {}
        path = write_kubeconfig(tmp_path / "anonymous", config)
        rec = Recorder()
        async with running(make_source(path, rec)):
            assert (await first_error(rec)).startswith("unauthorized (401): ")
    finally:
        await lab.stop()


async def test_a_wrong_ca_is_a_verification_error(tmp_path: Path) -> None:
    lab = await start_lab_cluster(tls=True, workdir=tmp_path, animate=False)
    try:
        config = yaml.safe_load(lab.kubeconfig_path.read_text())
        other = kubeconfig_dict(lab.url, certs=generate_certs(("10.0.0.1",)))
        config["clusters"] = other["clusters"]
        path = write_kubeconfig(tmp_path / "wrong-ca", config)
        rec = Recorder()
        async with running(make_source(path, rec)):
            error = await first_error(rec)
            assert error.startswith(f"TLS verification of {lab.url} failed: ")
            assert "certificate" in error
    finally:
        await lab.stop()


async def test_a_tunnelled_server_still_verifies_the_certificate_name(tmp_path: Path) -> None:
    """The certificate names only kind-control-plane (as with `kind get kubeconfig
    --internal`); the API is reached through a local port, verified by that name: the
    kubeconfig `--host` writes (remote/host_setup.py, through apply_override)."""
    certs = generate_certs(("kind-control-plane",))
    server = FakeKubeAPI(ssl_context=server_ssl_context(certs, tmp_path / "pki"))
    populate(server.store)
    await server.start()
    try:
        config = kubeconfig_dict("https://kind-control-plane:6443", certs=certs)
        apply_override(config["clusters"][0]["cluster"], f"127.0.0.1:{server.port}")
        assert config["clusters"][0]["cluster"]["tls-server-name"] == "kind-control-plane"
        path = write_kubeconfig(tmp_path / "kubeconfig", config)
        rec = Recorder()
        settings = timed_settings(FAST, kubeconfig=str(path), kube_request_timeout=2.0)
        from megatui.clock import SystemClock
        from megatui.sources.kube import KubeSource

        source = KubeSource(settings, SystemClock(), rec)
        async with running(source):
            await rec.wait_for(loaded)
    finally:
        await server.stop()


KUBECONFIG_HEAD = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
users: [{name: u, user: {}}]
"""


@pytest.mark.parametrize(
    ("tail", "error"),
    [
        (
            'users: [{name: u, user: "me"}]',
            "kubeconfig {path}: user 'u' is not a mapping",
        ),
        (
            "clusters: [{name: c, cluster: {server: 5}}]",
            "cluster 'c' in {path} has no server address",
        ),
    ],
    ids=["user-string", "server-number"],
)
async def test_a_kubeconfig_of_the_wrong_shape_is_one_line_and_retried(
    tmp_path: Path, tail: str, error: str
) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG_HEAD + tail + "\n", encoding="utf-8")
    rec = Recorder()
    async with running(make_source(path, rec)) as task:
        assert await first_error(rec) == error.format(path=path)
        # Retried with backoff, never raised out of run().
        await rec.wait_for(lambda s: len(rec.states) >= 4)
        assert not task.done()
