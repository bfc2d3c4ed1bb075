"""Starting and stopping `megatui serve` as a process: flags, token, sockets, signals."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import shutil
import signal
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from aiohttp import web

from megatui import doctor
from megatui.config import Settings, state_dir
from megatui.doctor import CheckResult
from megatui.loopback import is_loopback
from megatui.monitor import Monitor
from megatui.serve import auth
from megatui.serve.recovery_runner import RecoveryRunner
from megatui.serve.server import ControlServer, DoctorRunner, Options, tab_command

log = logging.getLogger(__name__)

DEFAULT_PORT = 8090


class ServeError(Exception):
    """Cannot serve; one line, exit 2."""


@dataclass(frozen=True)
class ServeArgs:
    bind: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    allow_actions: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    browser: bool = True
    token_file: Path | None = None


def token_path(args: ServeArgs) -> Path:
    return args.token_file or state_dir() / auth.TOKEN_FILE


def tls_context(args: ServeArgs) -> ssl.SSLContext | None:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ServeError("--tls-cert and --tls-key go together")
    if not args.tls_cert or not args.tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ServeError(f"cannot load the TLS certificate or key: {exc}") from None
    return context


def policy_for(args: ServeArgs, tls: bool) -> tuple[auth.Policy, str | None]:
    """The access policy, and the token to show (only when it was just made)."""
    loopback = is_loopback(args.bind)
    if loopback:
        return auth.Policy(token=None, tls=tls, loopback=True), None
    try:
        token, new = auth.load_or_create_token(token_path(args))
    except auth.TokenError as exc:
        raise ServeError(str(exc)) from None
    return auth.Policy(token=token, tls=tls, loopback=False), token if new else None


def doctor_runner(settings: Settings, monitor: Monitor) -> DoctorRunner:
    async def run() -> tuple[list[CheckResult], dict[str, object]]:
        checks = doctor.plan(settings)
        ctx = doctor.Context(settings, monitor, doctor.Progress(io.StringIO(), len(checks)))
        ctx.first_round = asyncio.create_task(
            monitor.wait_first_round(doctor.first_round_timeout(settings))
        )
        started_wall, started = time.time(), time.monotonic()
        try:
            results = await doctor.run_checks(ctx, checks)
        finally:
            ctx.first_round.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ctx.first_round
        duration = time.monotonic() - started
        return results, doctor.to_json(results, started_wall, duration, monitor.transport.label)

    return run


def _url(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}/"


async def serve(settings: Settings, args: ServeArgs, out: TextIO | None = None) -> int:
    """Serve until SIGINT, SIGTERM or SIGHUP; the exit code."""
    out = out or sys.stdout
    # From the first moment: a SIGTERM while starting must still clean up.
    stop = _stop_on_signals()
    context = tls_context(args)
    policy, new_token = policy_for(args, context is not None)
    from megatui.headless import build_monitor

    monitor = build_monitor(settings)
    sockets = Path(tempfile.mkdtemp(prefix="megatui-serve-"))  # 0700: only this user
    options = Options(
        allow_actions=args.allow_actions,
        readonly=settings.readonly,
        tls=context is not None,
        tab_command=tab_command(sockets / "api.sock") if args.browser else None,
    )
    recovery = RecoveryRunner(monitor, settings)
    server = ControlServer(
        monitor, options, policy, doctor=doctor_runner(settings, monitor), recovery=recovery
    )
    runner = web.AppRunner(server.make_app(), access_log=None, handle_signals=False)
    try:
        await runner.setup()
        site = web.TCPSite(runner, args.bind, args.port, ssl_context=context)
        try:
            await site.start()
        except OSError as exc:
            raise ServeError(
                f"cannot listen on {args.bind} port {args.port}: {exc.strerror or exc}"
            ) from None
        await web.UnixSite(runner, str(sockets / "api.sock")).start()
        port = _bound_port(runner, args.port)
        _announce(out, args, policy, new_token, context is not None, port)
        await monitor.start()
        await stop.wait()
        return 0
    finally:
        _restore_signals()
        with contextlib.suppress(Exception):
            await runner.cleanup()
        with contextlib.suppress(Exception):
            await monitor.stop()
        with contextlib.suppress(Exception):
            await monitor.transport.close()
        shutil.rmtree(sockets, ignore_errors=True)


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked


def _announce(
    out: TextIO,
    args: ServeArgs,
    policy: auth.Policy,
    new_token: str | None,
    tls: bool,
    port: int,
) -> None:
    scheme = "https" if tls else "http"
    url = _url(scheme, args.bind, port)
    mode = "actions allowed" if args.allow_actions else "read-only for viewers"
    print(f"megatui serve: {url} ({mode})", file=out)
    if policy.token is not None:
        if new_token is not None:
            print(
                f"open once (this is the only time the token is shown): {url}?token={new_token}",
                file=out,
            )
        else:
            print(f"token: in {token_path(args)}", file=out)
        if not tls:
            print(
                "megatui serve: warning: plain HTTP beyond loopback: the token crosses the "
                "network in clear (use --tls-cert/--tls-key)",
                file=sys.stderr,
            )
    out.flush()


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    return stop


def _restore_signals() -> None:
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.remove_signal_handler(sig)


def run(settings: Settings, args: ServeArgs) -> int:
    logging.basicConfig(level=logging.WARNING, format="megatui serve: %(message)s")
    try:
        return asyncio.run(serve(settings, args))
    except ServeError as exc:
        print(f"megatui: {exc}", file=sys.stderr)
        return 2


def serve_demo(args: ServeArgs) -> int:
    """`megatui serve --demo`: the demo's simulated platform, served."""
    import os

    from megatui.config import load_settings
    from megatui.lab.demo import DemoLab, lab_directory

    # The token stays in the user's state directory, not in the lab's throwaway one.
    args = replace(args, token_file=token_path(args))

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through lab.stop() below

    # While the lab starts (before the server's own handlers): stop it cleanly.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    with lab_directory(None) as root:
        lab = DemoLab(root)
        try:
            lab.start()
            os.environ.update(lab.environ())
            return run(load_settings(lab.config_path, environ={}), args)
        finally:
            lab.stop()
