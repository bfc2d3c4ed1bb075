"""The `megatui` command: the TUI by default, and headless subcommands for scripts.

Exit codes: 0 success; 1 a check failed or a wait timed out; 2 bad usage, bad
config or an unknown VM; 130 interrupted; the TUI exits 129 on SIGHUP (its
terminal went away) and 143 on SIGTERM, after closing everything. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from megatui import __version__
from megatui.config import ConfigError, Settings, load_settings


class UsageError(Exception):
    """Bad input from the user: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line, like every other error megatui reports."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options accepted both before and after the subcommand."""
    default: Any = argparse.SUPPRESS if suppress else None
    g = parser.add_argument_group("common options")
    g.add_argument("--config", metavar="FILE", default=default, help="config file (TOML)")
    g.add_argument(
        "--host",
        metavar="[USER@]MAC[:PORT]",
        default=default,
        help="drive a Mac host over one SSH connection",
    )
    g.add_argument("--tart", metavar="PATH", default=default, help="the tart executable")
    g.add_argument(
        "--orchard",
        metavar="URL",
        nargs="?",
        const="",
        default=default,
        help="the VMs of an Orchard controller (without URL: the Orchard CLI's default "
        "context; the cluster stays this Mac's or --host's)",
    )
    g.add_argument(
        "--orchard-context",
        metavar="NAME",
        default=default,
        help="an Orchard controller from the Orchard CLI's contexts file",
    )
    g.add_argument(
        "--readonly", action="store_true", default=default, help="never start or stop anything"
    )
    g.add_argument("--kubeconfig", metavar="FILE", default=default)
    g.add_argument("--context", metavar="NAME", default=default, help="kube context")
    g.add_argument("--namespace", metavar="NS", default=default, help="ArgoCD namespace")
    g.add_argument(
        "--docker-host",
        metavar="URL",
        default=default,
        help="Docker daemon, e.g. unix:///var/run/docker.sock",
    )
    g.add_argument("--vm-user", metavar="USER", default=default, help="SSH user for VMs")
    # Not a value on the command line: argv is readable by every local user (`ps`).
    g.add_argument("--vm-password", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS)
    g.add_argument(
        "--vm-password-file",
        metavar="FILE",
        default=default,
        help="file holding the SSH password for VMs (or set MEGATUI_VM_PASSWORD)",
    )
    g.add_argument("--vm-key", metavar="FILE", default=default, help="SSH private key for VMs")


class _RefusePassword(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            "--vm-password is not accepted (any local user can read it with `ps`): "
            "set MEGATUI_VM_PASSWORD or use --vm-password-file FILE"
        )


# orchard_proxy.add_arguments registers its subcommand's flags beside the code that
# reads them; its argparse calls are alike in shape only with the ones here.
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="megatui",
        description="The terminal control room for a Megalopolis platform: "
        "Kind, ArgoCD and Tart VMs on a Mac host.",
    )
    parser.add_argument("--version", action="version", version=f"megatui {__version__}")
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p, suppress=True)
        return p

    add("tui", "the interactive control room (the default)")
    p = add("status", "print one snapshot of everything")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="how long to wait for every source to answer once (default 10)",
    )
    p = add("wait", "wait until VMs accept SSH logins")
    p.add_argument("vms", nargs="+", metavar="VM")
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=600.0,
        metavar="S",
        help="give up after S seconds (default 600)",
    )
    p.add_argument("--json", action="store_true", help="print the VMs as JSON when done")
    p.add_argument(
        "--start",
        action="store_true",
        help="start VMs that are stopped or suspended (without it, they end the wait)",
    )
    p = add("start", "start a VM (Orchard: a stopped VM is recreated from its spec)")
    p.add_argument("vm", metavar="VM")
    p.add_argument("--wait", action="store_true", help="then wait until it accepts SSH logins")
    p.add_argument(
        "--timeout", type=_seconds, default=600.0, metavar="S", help="for --wait (default 600)"
    )
    p = add("stop", "stop a VM")
    p.add_argument("vm", metavar="VM")
    p = add("suspend", "suspend a running VM (macOS guests; start resumes it)")
    p.add_argument("vm", metavar="VM")
    p = add("create", "create a VM from an image")
    p.add_argument("vm", metavar="NAME")
    p.add_argument("--image", required=True, metavar="IMAGE", help="e.g. an OCI image of tart")
    p.add_argument("--cpu", type=_count, metavar="N")
    p.add_argument("--memory", type=_count, metavar="MB", help="memory in MiB")
    p.add_argument(
        "--restart-policy",
        choices=("Never", "OnFailure"),
        help="Orchard only: restart the VM when it fails",
    )
    p = add("delete", "delete a VM")
    p.add_argument("vm", metavar="VM")
    p.add_argument("--yes", action="store_true", help="do not ask")
    p = add("doctor", "check the whole platform, like a test suite")
    p.add_argument("--json", action="store_true")
    p.add_argument("--junit", metavar="FILE", help="also write JUnit XML to FILE")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="how long running VMs may take to become ready",
    )
    p = add("demo", "the TUI on a simulated platform, no setup needed")
    p.add_argument("--dir", metavar="DIR", help="keep the lab in DIR (default: a temp dir)")
    p = add("lab", "run the simulated platform on its own")
    p.add_argument("--dir", metavar="DIR", help="where to put the lab (default: a temp dir)")
    p = add("serve", "one monitor for many viewers: HTTP API, events, metrics, browser TUI")
    _serve_options(p)
    p.add_argument("--demo", action="store_true", help="serve the demo's simulated platform")
    p = add("attach", "the TUI fed by a running `megatui serve`")
    p.add_argument("url", nargs="?", default="http://127.0.0.1:8090", metavar="URL")
    p.add_argument("--token-file", metavar="FILE", help="the server's token (for a remote server)")
    p = add("service", "run `megatui serve` as a user service (launchd or systemd)")
    p.add_argument("action", choices=("install", "uninstall", "status"))
    _serve_options(p)
    p = add("forget-key", "forget a VM's trusted SSH host key (after a rebuild)")
    p.add_argument("vm", metavar="VM")
    from megatui.orchard_proxy import add_arguments as add_proxy_arguments

    p = sub.add_parser(
        "orchard-proxy",
        help="ssh ProxyCommand to a VM through an Orchard controller",
        description="Bridge stdin/stdout to PORT of an Orchard VM through the controller's "
        "port-forward (for ssh -o ProxyCommand=...). The token is read from the Orchard "
        "contexts file or ORCHARD_SERVICE_ACCOUNT_TOKEN, never from arguments.",
    )
    add_proxy_arguments(p)
    return parser


def _serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDR", help="default 127.0.0.1")
    p.add_argument("--port", type=_port, default=8090, metavar="N", help="default 8090")
    p.add_argument(
        "--allow-actions",
        action="store_true",
        help="let viewers and the API start and stop VMs (default: read-only viewers)",
    )
    p.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate")
    p.add_argument("--tls-key", metavar="FILE", help="the certificate's private key")


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


_FLAG_TO_SETTING = {
    "host": "host",
    "tart": "tart_path",
    "orchard": "orchard_url",
    "orchard_context": "orchard_context",
    "readonly": "readonly",
    "kubeconfig": "kubeconfig",
    "context": "kube_context",
    "namespace": "namespace",
    "docker_host": "docker_host",
    "vm_user": "ssh_user",
    "vm_key": "ssh_key",
}


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        setting: getattr(args, flag, None)
        for flag, setting in _FLAG_TO_SETTING.items()
        if getattr(args, flag, None) not in (None, False)
    }
    password_file = getattr(args, "vm_password_file", None)
    if password_file:
        overrides["ssh_password"] = _read_password(password_file)
    if getattr(args, "timeout", None) is not None and args.command == "doctor":
        overrides["doctor_timeout"] = args.timeout
    return load_settings(getattr(args, "config", None), overrides)


def _read_password(path: str) -> str:
    """The first line of FILE, without its line end (a file written by `echo`)."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read --vm-password-file {path}: {reason}") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise UsageError(f"--vm-password-file {path} is empty")
    return lines[0]


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _seconds(text: str) -> float:
    """A --timeout value: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"megatui: {message}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "tui"
    if command == "orchard-proxy":
        # Before any settings: a ProxyCommand must start fast and owes nothing to
        # megatui's config file.
        from megatui.orchard_proxy import args_from, run

        raise SystemExit(run(args_from(args)))
    try:
        if command in ("demo", "lab"):
            from megatui.lab import demo

            fleet = getattr(args, "orchard", None) is not None
            if command == "demo":
                raise SystemExit(demo.run_demo(args.dir, fleet=fleet))
            raise SystemExit(demo.run_lab(args.dir, fleet=fleet))
        settings = settings_from_args(args)
        if command == "forget-key":
            raise SystemExit(_forget_key(args.vm))
        if command == "tui":
            raise SystemExit(run_tui(settings))
        if command == "serve":
            raise SystemExit(_serve(args, settings))
        if command == "attach":
            from megatui.serve.client import run_attach

            raise SystemExit(run_attach(args.url, args.token_file, settings))
        if command == "service":
            from megatui.serve import service

            raise SystemExit(service.main(args.action, service_argv(args)))
        from megatui import headless

        if command == "status":
            raise SystemExit(asyncio.run(headless.status(settings, args.json, args.timeout)))
        if command == "wait":
            raise SystemExit(
                asyncio.run(
                    headless.wait(settings, args.vms, args.timeout, args.json, start=args.start)
                )
            )
        if command in ("start", "stop", "suspend", "create", "delete"):
            from megatui import vm_commands

            raise SystemExit(asyncio.run(vm_commands.run(command, settings, args)))
        if command == "doctor":
            from megatui import doctor

            raise SystemExit(asyncio.run(doctor.run(settings, args.json, args.junit)))
    except ConfigError as exc:
        fail(str(exc), 2)
    except UsageError as exc:
        fail(str(exc), 2)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    parser.error(f"unknown command {command}")


def run_tui(settings: Settings) -> int:
    from megatui.headless import build_monitor
    from megatui.ui.app import run_app

    monitor = build_monitor(settings)
    cleanup = functools.partial(_remove_secrets, monitor.transport)
    try:
        return run_app(monitor, settings, on_hangup=cleanup)
    finally:
        cleanup()


def _remove_secrets(transport: object) -> None:
    """The last resort of the exits that skip the app's own cleanup (a crash before
    it mounted, the hard exit after a hangup it could not finish in time): copies of
    credentials must not outlive megatui. Runs without the event loop, from any thread.

    With --host the app closes the connection when it unmounts (Monitor.stop), which
    removes the private directory holding the host's kubeconfig (client key
    included); here it is removed in any case. (The Kubernetes client's copies of
    the kubeconfig's certificates are gone once it has connected: kube_files.py.)"""
    discard = getattr(transport, "discard", None)
    if callable(discard):
        discard()


def _forget_key(vm: str) -> int:
    from megatui.sources.hostkeys import HostKeyStore, HostKeyStoreError, default_path

    store = HostKeyStore(default_path())
    try:
        forgotten = store.forget(vm)
    except HostKeyStoreError as exc:
        print(f"megatui: {exc}", file=sys.stderr)
        return 1
    if forgotten:
        print(f"forgot the host key of VM '{vm}'; the next login trusts the new one")
        return 0
    print(f"megatui: no host key stored for VM '{vm}'", file=sys.stderr)
    return 2


def _serve_args(args: argparse.Namespace) -> Any:
    from megatui.serve.run import ServeArgs

    return ServeArgs(
        bind=args.bind,
        port=args.port,
        allow_actions=args.allow_actions,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from megatui.serve import run

    if args.demo:
        return run.serve_demo(_serve_args(args))
    return run.run(settings, _serve_args(args))


def service_argv(args: argparse.Namespace) -> list[str]:
    """The `megatui ... serve` arguments a service runs with: the flags given now."""
    argv: list[str] = []
    # The password itself is never written into a service file; its file's path is.
    for flag in (*_FLAG_TO_SETTING, "vm_password_file"):
        value = getattr(args, flag, None)
        option = "--" + flag.replace("_", "-")
        if value is True:
            argv.append(option)
        elif value not in (None, False):
            if flag in ("kubeconfig", "vm_key", "vm_password_file"):
                value = os.path.abspath(str(value))
            argv += [option, str(value)]
    if getattr(args, "config", None):
        argv += ["--config", os.path.abspath(args.config)]
    argv.append("serve")
    argv += ["--bind", args.bind, "--port", str(args.port)]
    if args.allow_actions:
        argv.append("--allow-actions")
    for flag in ("tls_cert", "tls_key"):
        if getattr(args, flag, None):
            argv += ["--" + flag.replace("_", "-"), os.path.abspath(getattr(args, flag))]
    return argv


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
