"""The lab the comparison, cold-start and cost benchmarks share: DemoLab (fake tart with
VMs whose SSH servers really boot, the Kind-like API server, the fake Docker API) with
the cluster settled, so nothing in it changes unless a benchmark changes it."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from megatui.lab.demo import DemoLab, _ensure_key, _LoopThread
from megatui.lab.tartlab import LabVMSpec, create_tart_lab

#: This checkout first on the path of every megatui process a benchmark starts.
REPO = Path(__file__).resolve().parent.parent
REPO_PATH = os.pathsep.join([str(REPO), str(REPO / "tests")])

#: Linux guests (Apple's 2-macOS-VM limit does not apply): one ready, one to boot.
VMS = (
    LabVMSpec(
        "ubuntu-runner",
        initial="running",
        ip_after=0.3,
        port_after=0.6,
        login_after=0.9,
        os="linux",
    ),
    LabVMSpec(
        "bench", initial="stopped", ip_after=0.5, port_after=1.0, login_after=3.0, os="linux"
    ),
)


class SettledLab(DemoLab):
    """DemoLab with the cluster started settled (no Argo CD start-up animation, no
    crash loop); its VMs accept the lab's key, as the demo's do."""

    def start(self) -> None:
        from megatui.lab.cluster import start_lab_cluster
        from megatui.lab.docker_api import start_fake_docker

        self.root.mkdir(parents=True, exist_ok=True)
        public = _ensure_key(self.key_path)
        self.specs = tuple(replace(s, authorized_key=public) for s in self.specs)
        self.tart = create_tart_lab(self.root / "tart", self.specs)
        self._loop = _LoopThread()
        self._cluster = self._loop.call(
            start_lab_cluster(
                host="127.0.0.1", port=0, tls=True, workdir=self.root / "kube", animate=False
            )
        )
        self._docker = self._loop.call(start_fake_docker(self.root / "docker.sock"))
        self.tart.start_running()
        self.config_path.write_text(self._config_toml())

    @property
    def kubeconfig(self) -> str:
        return str(self._cluster.kubeconfig_path)

    @property
    def kube_context(self) -> str:
        return str(self._cluster.context)

    @property
    def docker_url(self) -> str:
        return str(self._docker.url)

    def set_login_after(self, name: str, seconds: float) -> None:
        """Change when the VM's sshd accepts logins at its next boot (the fake tart reads
        the spec file at each `tart run`)."""
        assert self.tart is not None
        path = self.tart.paths.spec(name)
        spec = json.loads(path.read_text())
        spec["login_after"] = seconds
        path.write_text(json.dumps(spec))

    def logins_accepted_at(self, name: str) -> float:
        """Wall-clock time at which the running VM's sshd started accepting logins."""
        assert self.tart is not None
        record = json.loads(self.tart.paths.run_record(name).read_text())
        spec = json.loads(self.tart.paths.spec(name).read_text())
        return float(record["started_at"]) + float(spec["login_after"])

    def process_env(self) -> dict[str, str]:
        """The environment a user's shell would have with this lab: its tart first on
        PATH, Docker and Kubernetes pointed at the fakes, megatui's dirs in the lab."""
        assert self.tart is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MEGATUI_", "SSH_"))}
        env.update(self.environ())
        env["PATH"] = f"{self.tart.paths.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["KUBECONFIG"] = self.kubeconfig
        env["DOCKER_HOST"] = self.docker_url
        env["PYTHONPATH"] = REPO_PATH
        return env


def megatui_argv(config: Path) -> list[str]:
    """`megatui --config FILE` as this checkout runs it: the console script's entry point
    (megatui.cli:main) through `python -m megatui`."""
    return [sys.executable, "-m", "megatui", "--config", str(config)]
