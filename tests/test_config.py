from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from megatui.clock import SystemClock
from megatui.config import ConfigError, KubeTiming, RemoteSettings, Settings, load_settings
from megatui.headless import build_transport
from megatui.remote import RemoteTransport
from megatui.sources.kube import KubeSource
from megatui.sources.kube_events import EventsSource


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_without_any_file() -> None:
    settings = load_settings(environ={})
    assert settings.tart_path == "tart"
    assert settings.ssh_user == "admin"
    assert settings.namespace == "argocd"
    assert settings.tart_poll_interval == 10.0
    assert settings.config_path is None


def test_file_then_env_then_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[tart]\npath = "/opt/tart"\npoll_interval = 20\n[ssh]\nuser = "ci"\n'
        '[vms.builder]\nport = 2222\nuser = "root"\n',
    )
    env = {"MEGATUI_TART": "/env/tart", "MEGATUI_VM_PASSWORD": "s3cret"}
    settings = load_settings(path, {"tart_path": "/flag/tart"}, environ=env)
    assert settings.tart_path == "/flag/tart"
    assert settings.tart_poll_interval == 20.0
    assert settings.ssh_password == "s3cret"
    builder = settings.vm("builder")
    assert (builder.port, builder.user, builder.password) == (2222, "root", "s3cret")
    other = settings.vm("other")
    assert (other.port, other.user) == (22, "ci")


def test_env_var_names_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[kube]\nnamespace = "gitops"\n')
    settings = load_settings(environ={"MEGATUI_CONFIG": str(path)})
    assert settings.namespace == "gitops"
    assert settings.config_path == path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[tart]\npth = "x"\n', "unknown key 'tart.pth'"),
        ("[nope]\nx = 1\n", "unknown section 'nope'"),
        ("[tart]\npoll_interval = -1\n", "'tart.poll_interval': expected a positive number"),
        ('[ssh]\nport = "many"\n', "'ssh.port': expected a port number"),
        ("[ssh]\nport = 70000\n", "between 1 and 65535"),
        ("[ssh]\nport = 22.5\n", "'ssh.port': expected a port number (got 22.5)"),
        ("[doctor]\nexpected_nodes = 2.5\n", "'doctor.expected_nodes': expected a whole number"),
        ('[vms.a]\ncolour = "red"\n', "unknown key 'vms.a.colour'"),
        ("[general]\nreadonly = 3\n", "'general.readonly': expected true or false"),
        # Values in TOML spelling, as the user wrote them, not Python's.
        ("[tart]\ntimeout = true\n", "'tart.timeout': expected a positive number (got true)"),
        ('[ssh]\nuser = ["a", false]\n', "'ssh.user': expected a string (got [\"a\", false])"),
        # [keys]: an unknown action, an empty value, a key Textual cannot bind, a key taken
        ('[keys]\nlaunch = "l"\n', "unknown key 'keys.launch'"),
        ('[keys]\nstart = ""\n', "'keys.start': expected a key such as"),
        ('[keys]\nstart = "g,"\n', "'keys.start': expected keys separated by commas"),
        ('[keys]\nstart = "foo"\n', "'keys.start': 'foo' is not a key Textual can bind"),
        ('[keys]\nstart = "cmd+g"\n', "'keys.start': 'cmd+g' is not a key"),
        ("[keys]\nstart = 7\n", "'keys.start': expected a string (got 7)"),
        ('[keys]\nstart = "x"\n', "'keys.start': x is already bound to keys.stop (got \"x\")"),
        ('[keys]\nhelp = "/"\n', "'keys.help': slash is already bound to keys.filter"),
        ('[keys]\nquit = "2"\n', "'keys.quit': 2 is already bound to focus panel 2"),
        ('[keys]\nstart = "g"\nstop = "G,g"\n', "'keys.stop': g is already bound to keys.start"),
        (
            "[remote]\nkeepalive_count = 0\n",
            "'remote.keepalive_count': expected a whole number of 1",
        ),
        ("[remote]\nkeepalive_interval = 0\n", "'remote.keepalive_interval': expected a positive"),
        ("[remote]\nmax_sessions = 0\n", "'remote.max_sessions': expected a whole number of 1"),
        ("[remote]\nretry = 1\n", "unknown key 'remote.retry'"),
        (
            "[remote]\nreconnect_delay = 45\n",
            "'remote.reconnect_delay' must not be above 'remote.reconnect_max_delay'"
            " (got 45 and 30)",
        ),
        # [kube] pacing: positive numbers, a jitter below 1, a backoff below its cap
        ("[kube]\nreconnect_delay = 0\n", "'kube.reconnect_delay': expected a positive number"),
        ('[kube]\nwatch_grace = "soon"\n', "'kube.watch_grace': expected a number (got \"soon\")"),
        ("[kube]\ncrd_retry_interval = -5\n", "'kube.crd_retry_interval': expected a positive"),
        ("[kube]\nrestarts_refresh_interval = nan\n", "'kube.restarts_refresh_interval': expected"),
        ("[kube]\ncoalesce = -0.1\n", "'kube.coalesce': expected a number of 0 or more"),
        ("[kube]\nreconnect_jitter = 1\n", "'kube.reconnect_jitter': expected a number from 0"),
        ("[kube]\nreconnect_jitter = -0.1\n", "'kube.reconnect_jitter': expected a number of 0"),
        (
            "[kube]\nreconnect_delay = 5\nreconnect_max_delay = 2\n",
            "'kube.reconnect_delay' must not be above 'kube.reconnect_max_delay' (got 5 and 2)",
        ),
        (
            "[kube]\nreconnect_max_delay = 0.25\n",
            # An unset key counts with its default (0.5 s).
            "'kube.reconnect_delay' must not be above 'kube.reconnect_max_delay'"
            " (got 0.5 and 0.25)",
        ),
        ("[kube]\nbackoff_max = 1\n", "unknown key 'kube.backoff_max'"),
        ("[tart\n", "invalid TOML"),
        ('tart = "x"\n', "'tart' must be a table"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_remote_section_reaches_the_host_connection(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[remote]\nkeepalive_interval = 10\nkeepalive_count = 5\nreconnect_delay = 2\n"
        'reconnect_max_delay = 60\nmax_sessions = 4\nknown_hosts = "~/kh"\nssh_config = "~/cfg"\n',
    )
    settings = load_settings(path, {"host": "admin@mac"}, environ={})
    assert settings.remote() == RemoteSettings(
        keepalive_interval=10.0,
        keepalive_count=5,
        reconnect_delay=2.0,
        reconnect_max_delay=60.0,
        max_sessions=4,
        known_hosts="~/kh",
        ssh_config="~/cfg",
    )
    transport = build_transport(settings)
    assert isinstance(transport, RemoteTransport)
    assert transport.settings == settings.remote()
    # Without the section: 12 s to notice a frozen host, backoff from 1 s to 30 s.
    assert load_settings(environ={}).remote() == RemoteSettings(
        keepalive_interval=4.0, keepalive_count=2, reconnect_delay=1.0, reconnect_max_delay=30.0
    )


def test_kube_section_paces_the_kubernetes_sources(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[kube]\nreconnect_delay = 2\nreconnect_max_delay = 2\nreconnect_jitter = 0\n"
        "crd_retry_interval = 300\ncoalesce = 0\nrestarts_refresh_interval = 30\n"
        "watch_grace = 10\n",
    )
    settings = load_settings(path, environ={})
    expected = KubeTiming(
        reconnect_delay=2.0,
        reconnect_max_delay=2.0,
        reconnect_jitter=0.0,
        crd_retry_interval=300.0,
        coalesce=0.0,
        restarts_refresh_interval=30.0,
        watch_grace=10.0,
    )
    assert settings.kube_timing() == expected
    assert KubeSource(settings, SystemClock(), lambda _state: None).timing == expected
    assert EventsSource(settings, SystemClock(), lambda _state: None).timing == expected


def test_kube_pacing_defaults_are_the_shipped_ones() -> None:
    # The values KubeSource used before they became [kube] keys.
    assert load_settings(environ={}).kube_timing() == KubeTiming(
        reconnect_delay=0.5,
        reconnect_max_delay=30.0,
        reconnect_jitter=0.2,
        crd_retry_interval=60.0,
        coalesce=0.05,
        restarts_refresh_interval=10.0,
        watch_grace=5.0,
    )
    assert Settings().kube_timing() == KubeTiming()


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="MEGATUI_VM_PORT: expected a port number"):
        load_settings(environ={"MEGATUI_VM_PORT": "ssh"})


def test_missing_explicit_file() -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings("/nonexistent/megatui.toml", environ={})


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "megatui", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[tart]\ntimeout = 0\n")
    result = run_cli("--config", str(path), "status")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "'tart.timeout'" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("megatui 0.")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("wait", "vm", "--timeout", "0"), "expected a positive number of seconds"),
        (("status", "--timeout", "soon"), "expected seconds"),
        (("--bogus",), "unrecognized arguments: --bogus"),
        (("wait",), "the following arguments are required: VM"),
    ],
)
def test_cli_usage_errors_are_one_line(args: tuple[str, ...], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr


def test_good_keys_are_stored_in_textuals_spelling(tmp_path: Path) -> None:
    path = write(tmp_path, '[keys]\nstart = "g, ctrl+?"\nstop = "s"\nstart = "g"\n')
    with pytest.raises(ConfigError, match="invalid TOML"):  # a key written twice
        load_settings(path, environ={})
    path = write(tmp_path, '[keys]\nstart = "x"\nstop = "s, ctrl+?"\nhelp = "f1"\n')
    settings = load_settings(path, environ={})
    assert settings.keys == {"start": "x", "stop": "s,ctrl+question_mark", "help": "f1"}


@pytest.mark.parametrize("char", list("?/\\@-+_.,;:!#$%&*()[]{}<>|~^'\"`=aZ9é"))
def test_key_names_match_textuals(char: str) -> None:
    from textual.keys import _character_to_key

    from megatui.key_bindings import normalize_key

    assert normalize_key(char) == _character_to_key(char)


@pytest.mark.parametrize(
    ("key", "name"),
    [("+", "plus"), ("ctrl++", "ctrl+plus"), ("ctrl+g", "ctrl+g"), ("shift+tab", "shift+tab")],
)
def test_plus_and_modifiers(key: str, name: str) -> None:
    from megatui.key_bindings import normalize_key

    assert normalize_key(key) == name


@pytest.mark.parametrize("key", ["ctrl+", "+g", "++", "ctrl+ctrl+g", "ctrl+enterr", " "])
def test_not_keys(key: str) -> None:
    from megatui.key_bindings import normalize_key

    with pytest.raises(ValueError):
        normalize_key(key)


# --- [orchard] (#11) -----------------------------------------------------------------------


def test_orchard_section_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[orchard]\nurl = "https://orchard.example:6120"\ncontext = "prod"\n'
        'service_account = "megatui"\ntoken = "s3cret-token"\n',
    )
    settings = load_settings(path, environ={})
    assert settings.orchard
    assert settings.orchard_url == "https://orchard.example:6120"
    assert (settings.orchard_context, settings.orchard_service_account) == ("prod", "megatui")
    assert settings.orchard_token == "s3cret-token"
    assert "s3cret-token" not in repr(settings)
    assert not load_settings(environ={}).orchard


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[orchard]\nurl = "http://orchard.example:6120"\n', "'orchard.url': "),
        ('[orchard]\nurl = "ftp://x"\n', "'orchard.url': "),
        ("[orchard]\nurl = 6120\n", "'orchard.url': expected a string"),
        ("[orchard]\ncontext = true\n", "'orchard.context': expected a string"),
        ('[orchard]\nport = "x"\n', "unknown key 'orchard.port'"),
    ],
)
def test_bad_orchard_config_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_bad_token_is_refused_without_being_repeated(tmp_path: Path) -> None:
    path = write(tmp_path, '[orchard]\ntoken = "half of a secret"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert "'orchard.token'" in str(info.value)
    assert "secret" not in str(info.value)


def test_cli_orchard_refuses_plain_http_to_another_machine() -> None:
    result = run_cli("--orchard", "http://orchard.example:6120", "status")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "orchard.example" in result.stderr and "Traceback" not in result.stderr


def test_cli_unknown_orchard_context_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "ORCHARD_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "megatui", "--orchard-context", "nope", "stop", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "no Orchard context 'nope'" in result.stderr
