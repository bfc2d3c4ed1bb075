"""Checks of the Docker daemon and the Kind node containers."""

from __future__ import annotations

from megatui.doctor.outcome import Outcome, failed, ok, plural
from megatui.doctor.runner import Context


async def check_docker_daemon(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    docker = snap.docker
    if docker is None:
        return failed("the Docker source gave no answer")
    if not docker.reachable:
        return failed(
            docker.error or "Docker daemon unreachable",
            "start Docker (Docker Desktop, colima or dockerd) or set [docker] host",
        )
    return ok(f"Docker {docker.server_version} reachable" if docker.server_version else "reachable")


async def check_kind_network(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    docker = snap.docker
    assert docker is not None
    if docker.kind_network:
        return ok("network 'kind' exists")
    return failed(
        "no Docker network named exactly 'kind'",
        "kind creates it with the first cluster: `kind create cluster`",
    )


async def check_kind_nodes(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    docker = snap.docker
    assert docker is not None
    if not docker.clusters:
        return failed("no Kind node containers found", "create one with `kind create cluster`")
    down = [n for c in docker.clusters for n in c.nodes if n.state != "running"]
    total = sum(len(c.nodes) for c in docker.clusters)
    names = ", ".join(c.name for c in docker.clusters)
    if down:
        listed = ", ".join(f"{n.name} {n.state}" for n in down)
        return failed(
            f"{len(down)} of {total} Kind node containers not running: {listed}",
            "docker start them, or recreate the cluster",
        )
    label = "cluster" if len(docker.clusters) == 1 else "clusters"
    return ok(f"Kind {label} {names}: {plural(total, 'node container')} running")
