"""The rules that live in one place and have several users: backoff with jitter
(megatui.backoff), one-line errors (megatui.text), the locked-keychain markers and
hint (megatui.keychain), pointing a kubeconfig cluster at another address
(sources/kubeconfig.apply_override), and writing our own files (megatui.files). Each
test checks that the users see the same rule."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from megatui.backoff import Backoff, backoff_delay
from megatui.clock import FakeClock
from megatui.config import Settings
from megatui.keychain import KEYCHAIN_HINT, KEYCHAIN_MARKERS, keychain_hint
from megatui.remote.host_setup import _forward_server
from megatui.sources.kube import KubeSource
from megatui.sources.kubeconfig import apply_override
from megatui.sources.tart import TartErrorKind, classify_failure
from megatui.text import one_line, tilde
from megatui.transport import CommandResult

# --------------------------------------------------------------------------- backoff


def test_backoff_counts_failures_doubles_to_the_cap_and_resets() -> None:
    backoff = Backoff(base=0.5, cap=3.0, rand=random.Random(3))
    delays = [backoff.next_delay() for _ in range(6)]
    for n, delay in enumerate(delays):
        nominal = min(3.0, 0.5 * 2.0**n)
        assert 0.8 * nominal <= delay <= 1.2 * nominal, (n, delay)
    assert backoff.failures == 6
    backoff.reset()
    assert backoff.failures == 0
    assert 0.4 <= backoff.next_delay() <= 0.6  # from the base again, not from the cap


def test_backoff_default_cap_and_jitter() -> None:
    backoff = Backoff(base=1.0)
    assert (backoff.cap, backoff.jitter, backoff.failures) == (60.0, 0.2, 0)
    delays = [backoff.next_delay() for _ in range(12)]
    assert all(48.0 <= d <= 72.0 for d in delays[7:])  # 2**6 = 64 > 60: capped


def test_backoff_delay_without_jitter_is_exact_and_never_overflows() -> None:
    assert [backoff_delay(n, 0.5, 30.0, jitter=0.0) for n in range(8)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
    ]
    assert backoff_delay(10_000, 1.0, 30.0, jitter=0.0) == 30.0
    assert backoff_delay(-1, 1.0, 30.0, jitter=0.0) == 1.0


def test_the_kube_source_backs_off_by_the_same_rule() -> None:
    settings = Settings(
        kube_reconnect_delay=0.5, kube_reconnect_max_delay=4.0, kube_reconnect_jitter=0.0
    )
    source = KubeSource(settings, FakeClock(), lambda _state: None)
    # KubeSource counts the first failure as 1; the shared rule counts from 0.
    assert [source._delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [source._delay(n) for n in range(1, 7)] == [
        backoff_delay(n, 0.5, 4.0, jitter=0.0) for n in range(6)
    ]
    jittered = KubeSource(Settings(), FakeClock(), lambda _state: None)
    delays = [jittered._delay(3) for _ in range(50)]
    assert all(1.6 <= d <= 2.4 for d in delays) and len(set(delays)) > 1


# --------------------------------------------------------------------------- one line


def test_one_line_folds_whitespace_and_cuts_with_an_ellipsis() -> None:
    assert one_line("  a\n\tb\r\n  c  ") == "a b c"
    assert one_line(ValueError("x\ny")) == "x y"
    assert one_line("abcdef", 6) == "abcdef"
    assert one_line("abcdefg", 6) == "abcde…"
    assert len(one_line("word " * 100, 40)) == 40


def test_tilde_shows_the_home_directory_as_a_tilde() -> None:
    home = str(Path.home())
    assert tilde(home) == "~"
    assert tilde(f"{home}/.kube/config") == "~/.kube/config"
    assert tilde(f"{home}x/config") == f"{home}x/config"  # a sibling, not inside
    assert tilde("/etc/kubeconfig") == "/etc/kubeconfig"


# --------------------------------------------------------------------------- keychain


@pytest.mark.parametrize("marker", KEYCHAIN_MARKERS)
def test_tart_and_the_host_check_share_the_keychain_rule(marker: str) -> None:
    text = f"Error: something failed: {marker} (more)"
    assert keychain_hint(text) == KEYCHAIN_HINT
    failure = CommandResult(("tart", "run", "--no-graphics", "vm"), 1, "", text + "\n")
    error = classify_failure(failure, "vm")
    assert error.kind == TartErrorKind.KEYCHAIN_LOCKED
    assert str(error).endswith(f"({KEYCHAIN_HINT})")


def test_no_marker_means_no_keychain_cause_for_either() -> None:
    text = 'Error: the specified VM "vm" does not exist'
    assert keychain_hint(text) is None
    failure = CommandResult(("tart", "run", "vm"), 1, "", text)
    assert classify_failure(failure, "vm").kind != TartErrorKind.KEYCHAIN_LOCKED


# --------------------------------------------------------------------------- kubeconfig


class _Forwarder:
    """What `_forward_server` needs of a transport: a local port per remote one."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    async def forward_tcp(self, host: str, port: int) -> int:
        self.asked.append((host, port))
        return 40000 + len(self.asked)


@pytest.mark.parametrize(
    ("server", "tls_name"),
    [
        ("https://kind-control-plane:6443/prefix", "kind-control-plane"),
        ("https://127.0.0.1:6443", None),  # Kind's certificate has IP SAN 127.0.0.1
        ("https://[::1]:6443", "::1"),
        ("http://localhost:8080", None),
    ],
)
async def test_the_host_setup_and_the_kube_override_rewrite_servers_alike(
    server: str, tls_name: str | None
) -> None:
    forwarder = _Forwarder()
    forwarded: dict[str, str] = {"server": server}
    await _forward_server(forwarder, forwarded)  # type: ignore[arg-type]
    assert len(forwarder.asked) == 1
    overridden = {"server": server}
    apply_override(overridden, "127.0.0.1:40001")
    assert forwarded == overridden
    assert forwarded.get("tls-server-name") == tls_name
    assert forwarded["server"].split("://")[1].startswith("127.0.0.1:40001")


async def test_a_server_that_is_not_http_is_left_alone() -> None:
    forwarder = _Forwarder()
    cluster = {"server": "unix:///var/run/k8s.sock"}
    await _forward_server(forwarder, cluster)  # type: ignore[arg-type]
    assert cluster == {"server": "unix:///var/run/k8s.sock"} and not forwarder.asked


# --------------------------------------------------------------------------- atomic writes


def test_every_file_of_ours_is_written_whole_and_private(tmp_path: Path) -> None:
    from megatui import recovery_history, vm_intents
    from megatui.actions import write_known_hosts
    from megatui.phases import BootHistory
    from megatui.vm_tracker import save_uids

    writers = {
        "known_hosts": lambda p: write_known_hosts(p, {"alpha": "ssh-ed25519 AAAA"}),
        "uids.json": lambda p: save_uids(p, {"alpha": "u1"}),
        "boot.json": lambda p: BootHistory().save(p),
        "intents.json": lambda p: vm_intents.record("alpha", "stop", 1.0, p),
        "history.json": lambda p: recovery_history.save(p, {"alpha": ([1.0], [])}, 2.0),
    }
    for name, write in writers.items():
        path = tmp_path / "new-dir" / name
        write(path)
        assert path.stat().st_mode & 0o777 == 0o600, name
    leftovers = [p.name for p in (tmp_path / "new-dir").iterdir() if p.name not in writers]
    assert leftovers == ["intents.json.lock"]  # vm_intents' flock, not a temp file


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    from megatui.files import write_atomic

    target = tmp_path / "file"
    target.write_text("old")

    def full_disk(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("megatui.files.os.fsync", full_disk)
        with pytest.raises(OSError, match="No space"):
            write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]
