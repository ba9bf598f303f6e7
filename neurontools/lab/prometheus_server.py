"""A real Prometheus server (Debian's /usr/bin/prometheus) in a temporary directory, on a free port.

    with PrometheusServer(targets=["127.0.0.1:8000"], rule_files=[rules]) as prometheus:
        prometheus.query("ALERTS")
        prometheus.alerts()

The configuration is deploy/prometheus/prometheus.yml's (job neuron-monitor, its scrape settings),
written as JSON (which Prometheus reads as YAML) with the targets and rule files given. Stopping
removes the process and the directory; a server that cannot start raises PrometheusError with the
one line that says why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

PROMETHEUS = "/usr/bin/prometheus"
READY_TIMEOUT_SECONDS = 30.0


class PrometheusError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class PrometheusServer:
    def __init__(self, *, targets: list[str], rule_files: list[Path], port: int | None = None,
                 scrape_interval: str = "5s", evaluation_interval: str = "15s",
                 binary: str | None = None, file_sd: Path | None = None) -> None:
        self.file_sd = Path(file_sd).resolve() if file_sd else None  # targets from this file, with their labels
        self.binary = binary or shutil.which("prometheus") or PROMETHEUS
        self.port = port
        self.targets = targets
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.process: subprocess.Popen | None = None
        self.directory: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def check(self) -> None:
        """PrometheusError when the server could not start: no binary, or its port is taken."""
        if not os.access(self.binary, os.X_OK):
            raise PrometheusError(f"no Prometheus server at {self.binary}: install Debian's prometheus package "
                                  "(scripts/install-system-deps.sh does)")
        if self.port is not None and not port_is_free(self.port):
            raise PrometheusError(f"cannot start Prometheus on 127.0.0.1:{self.port}: the port is taken; "
                                  "choose another with --prometheus-port (0 picks a free one)")

    def start(self) -> "PrometheusServer":
        self.check()
        if self.port is None:
            self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="neuron-lab-prometheus-"))
        try:
            config = self.directory / "prometheus.yml"
            config.write_text(json.dumps(self.config(), indent=2))
            log = open(self.directory / "prometheus.log", "wb")
            with log:
                self.process = subprocess.Popen(
                    [self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.directory / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def set_targets(self, targets: list[str]) -> None:
        """Rewrite the scrape targets and have Prometheus reload its configuration (SIGHUP)."""
        self.targets = targets
        (self.directory / "prometheus.yml").write_text(json.dumps(self.config(), indent=2))
        self.process.send_signal(signal.SIGHUP)

    def config(self) -> dict:
        job = {"job_name": "neuron-monitor", "scrape_interval": self.scrape_interval,
               "scrape_timeout": self.scrape_interval, "static_configs": [{"targets": self.targets}]}
        if self.file_sd is not None:
            # The exporter's own instance_type/availability_zone labels equal the target's: keep them
            # as they are rather than renaming them exported_*.
            job.update(file_sd_configs=[{"files": [str(self.file_sd)], "refresh_interval": "5s"}],
                       honor_labels=True)
            del job["static_configs"]
        return {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.evaluation_interval},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [job],
        }

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusError(f"Prometheus exited at start-up (status {self.process.returncode}): "
                                      f"{self._last_log_line()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise PrometheusError(f"Prometheus did not become ready on {self.url} in {READY_TIMEOUT_SECONDS:g} s: "
                              f"{self._last_log_line()}")

    def _last_log_line(self) -> str:
        try:
            lines = (self.directory / "prometheus.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        errors = [line for line in lines if "level=error" in line or "err=" in line]
        return (errors or lines or ["(no log)"])[-1]

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> "PrometheusServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the HTTP API ---------------------------------------------------------------------------

    def api(self, path: str, **params: str) -> dict | list:
        url = f"{self.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise PrometheusError(f"{path}: {body.get('error', body)}")
        return body["data"]

    def query(self, expression: str) -> list[dict]:
        return self.api("query", query=expression)["result"]

    def alerts(self) -> list[dict]:
        return self.api("alerts")["alerts"]

    def wait_for(self, expression: str, timeout: float, stop=None) -> None:
        """Until `expression` has a result; PrometheusError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            if self.query(expression):
                return
            time.sleep(0.2)
        if stop is None or not stop.is_set():
            raise PrometheusError(f"Prometheus at {self.url} has no result for {expression!r} after {timeout:g} s: "
                                  "is the exporter being scraped? (see its targets page)")

    def targets_up(self) -> bool:
        active = self.api("targets")["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)
