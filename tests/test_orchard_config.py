"""Orchard connection settings: the CLI's contexts file, its environment, and the
rule that a token only travels over HTTPS or to loopback (docs/orchard.md)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from megatui.lab.orchard.tls import self_signed
from megatui.sources.orchard_config import (
    OrchardConfigError,
    contexts_path,
    read_contexts,
    resolve,
)

_TOKEN = "ctx-t0ken-secret"


def _write(home: Path, text: str) -> Path:
    path = home / ".orchard" / "orchard.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _contexts_yaml(cert_pem: bytes) -> str:
    # The layout `orchard context create` writes (yaml.v3 of internal/config).
    cert = base64.b64encode(cert_pem).decode()
    return (
        "default-context: prod\n"
        "contexts:\n"
        "  prod:\n"
        "    url: https://orchard.example.com:6120\n"
        f"    certificate: {cert}\n"
        "    serviceAccountName: ci\n"
        f"    serviceAccountToken: {_TOKEN}\n"
        "  dev:\n"
        "    url: http://127.0.0.1:6120\n"
    )


def test_orchard_home_holds_the_dot_orchard_dir(tmp_path: Path) -> None:
    assert contexts_path({"ORCHARD_HOME": str(tmp_path)}) == tmp_path / ".orchard" / "orchard.yml"
    assert contexts_path({}) == Path.home() / ".orchard" / "orchard.yml"


def test_default_context_with_pinned_certificate(tmp_path: Path) -> None:
    cert, _key = self_signed()
    _write(tmp_path, _contexts_yaml(cert))
    config = resolve(env={"ORCHARD_HOME": str(tmp_path)})
    assert config.url == "https://orchard.example.com:6120" and config.context == "prod"
    assert (config.service_account, config.token, config.certificate_pem) == ("ci", _TOKEN, cert)
    assert _TOKEN not in repr(config) and "BEGIN" not in repr(config)
    dev = resolve(context="dev", env={"ORCHARD_HOME": str(tmp_path)})
    assert (dev.url, dev.token, dev.certificate_pem) == ("http://127.0.0.1:6120", None, None)


def test_environment_and_arguments_override(tmp_path: Path) -> None:
    cert, _key = self_signed()
    _write(tmp_path, _contexts_yaml(cert))
    env = {
        "ORCHARD_HOME": str(tmp_path),
        "ORCHARD_SERVICE_ACCOUNT_NAME": "env-sa",
        "ORCHARD_SERVICE_ACCOUNT_TOKEN": "env-token",
    }
    config = resolve(env=env)
    assert (config.service_account, config.token) == ("env-sa", "env-token")
    assert config.certificate_pem == cert  # same URL: the pin still applies
    moved = resolve(env={**env, "ORCHARD_URL": "https://other.example.com"})
    assert moved.certificate_pem is None  # a pin belongs to its own controller
    explicit = resolve(url="http://[::1]:6120", token="arg-token", env=env)
    assert (explicit.url, explicit.token) == ("http://[::1]:6120", "arg-token")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("contexts: [1, 2]\n", "'contexts' is not a mapping"),
        ("contexts:\n  a:\n    url: 5\n", "context 'a': 'url' is not a string"),
        ("contexts:\n  a:\n    certificate: '%%%'\n", "'certificate' is not base64"),
        ("contexts:\n  a:\n    certificate: aGVsbG8=\n", "holds no PEM certificate"),
        ("contexts: {a: [\n", "invalid YAML"),
    ],
)
def test_bad_contexts_file_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(OrchardConfigError) as caught:
        read_contexts(path)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_refusals(tmp_path: Path) -> None:
    env = {"ORCHARD_HOME": str(tmp_path)}
    assert read_contexts(contexts_path(env)).contexts == {}  # no file: empty, as the CLI
    cases = [
        ({}, "no Orchard controller configured"),
        ({"context": "prod"}, "no Orchard context 'prod'"),
        ({"url": "http://orchard.example.com:6120"}, "would send the token in clear"),
        ({"url": f"https://sa:{_TOKEN}@orchard.example.com"}, "must not carry credentials"),
        ({"url": "ftp://x"}, "is not an http:// or https:// URL"),
    ]
    for kwargs, expected in cases:
        with pytest.raises(OrchardConfigError) as caught:
            resolve(env=env, **kwargs)  # type: ignore[arg-type]
        text = str(caught.value)
        assert expected in text and _TOKEN not in text and "\n" not in text
    for loopback in ("http://127.0.0.1:6120", "http://localhost:6120", "http://127.0.0.5"):
        assert resolve(url=loopback, env=env).url == loopback
