"""A fleet of busy simulated inf2.48xlarge hosts in one real Prometheus, on this machine: what each host
costs and what Prometheus ingests, at AWS's 5 s monitor period.

For each fleet size, neuron-fleet's own hosts (neurontools/fleet: per host a neurond with every core
under in-daemon load, neuron-monitor at a 5 s period and its Prometheus exporter) and a real Prometheus
(Debian's) scraping them every 5 s through the file_sd discovery file, with deploy/'s single-host and
fleet rules. After a warm-up, over a window: CPU (user + system, psutil) of every neurond, neuron-monitor
and exporter process and of Prometheus; resident memory per host for each; from Prometheus itself, its
series count (prometheus_tsdb_head_series), its ingestion rate (samples appended per second) and the
samples per scrape; and missed scrapes: for every target, the scrapes the window should hold against
those `up` recorded as successful. The largest size with no missed scrape and every core busy holds the
5 s period. Its correctness check: Prometheus sees every host up and every core busy
(instance_type:neuroncore_busy:count, a fleet recording rule) once the window ends.

With --workload SPEC, every host serves that neuron-workload preset instead of the busy kernel (as
`neuron-fleet up --workload SPEC` does: request loads in its daemon), its neuron-workload process
counted as a fourth kind; the cores checked busy are those the preset takes.

    .venv/bin/python bench/bench_fleet.py [--quick] [--sizes 8,16,32] [--workload bert-base:cores=24]
"""

from __future__ import annotations

import os
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import common
import psutil
from prometheus_client.parser import text_string_to_metric_families

from neurontools.fleet.discovery import write_targets
from neurontools.fleet.host import Host
from neurontools.fleet.scenario import FLEET_RULES
from neurontools.fleet.spec import check_placement, fleet_hosts, idle_placer
from neurontools.lab.prometheus_server import PROMETHEUS, PrometheusServer
from neurontools.lab.rules import RULES, write_rules
from neurontools.workloads import catalog

PERIOD_S = 5.0  # AWS's neuron-monitor default, and the scrape interval
INSTANCE_TYPE = "inf2.48xlarge"
CORES = 24
CLASSES = ("neurond", "neuron-monitor", "exporter")


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


def _own_metric(prometheus: PrometheusServer, name: str) -> float:
    """A sample of Prometheus's own /metrics (the fleet's Prometheus does not scrape itself)."""
    with urllib.request.urlopen(f"{prometheus.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise RuntimeError(f"Prometheus at {prometheus.url} exposes no {name}")


def _scalar(prometheus: PrometheusServer, expression: str) -> float:
    result = prometheus.query(expression)
    return float(result[0]["value"][1]) if result else float("nan")


def trial(size: int, window_s: float, workload: str | None) -> dict:
    specs = fleet_hosts(hosts=size, instance_type=INSTANCE_TYPE, name="bench")
    classes = CLASSES + (("neuron-workload",) if workload else ())
    with tempfile.TemporaryDirectory(prefix="nt-bench-fleet-") as tmp:
        directory = Path(tmp)
        hosts = [Host(spec, directory / spec.name, monitor_period=PERIOD_S, workloads=[workload] if workload else None)
                 for spec in specs]
        prometheus = PrometheusServer(targets=[], rule_files=[write_rules(directory, 1, RULES),
                                                              write_rules(directory, 1, FLEET_RULES)],
                                      file_sd=directory / "targets.json", scrape_interval=f"{PERIOD_S:g}s",
                                      evaluation_interval="15s")
        try:
            started = time.monotonic()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda h: h.start(), hosts))
            startup_s = time.monotonic() - started
            write_targets(directory / "targets.json", hosts)
            prometheus.start()
            prometheus.wait_for(f"count(up == 1) == {size}", 120)
            time.sleep(3 * PERIOD_S)  # every exporter has reports, Prometheus a few scrapes of each
            procs = {name: [] for name in classes}
            for host in hosts:
                for name, popen in zip(classes, (host.daemon.process, host.monitor, host.exporter, host.workload)):
                    procs[name].append(psutil.Process(popen.pid))
            server = psutil.Process(prometheus.process.pid)
            before = {name: _cpu(p) for name, p in procs.items()} | {"prometheus": _cpu([server])}
            appended_before = _own_metric(prometheus, "prometheus_tsdb_head_samples_appended_total")
            t0 = time.monotonic()
            time.sleep(window_s)
            wall = time.monotonic() - t0
            after = {name: _cpu(p) for name, p in procs.items()} | {"prometheus": _cpu([server])}
            appended_after = _own_metric(prometheus, "prometheus_tsdb_head_samples_appended_total")
            window = f"{int(window_s)}s"
            expected = int(window_s // PERIOD_S)
            scraped = prometheus.query(f"sum_over_time(up[{window}])")
            missed = sum(max(0, expected - int(float(r["value"][1]))) for r in scraped) + \
                (size - len(scraped)) * expected
            time.sleep(16)  # one more rule evaluation after the window
            busy = _scalar(prometheus, f'sum(instance_type:neuroncore_busy:count{{instance_type="{INSTANCE_TYPE}"}})')
            up = _scalar(prometheus, "count(up == 1)")
            return {
                "size": size, "startup_s": startup_s, "wall": wall,
                "cpu": {name: (after[name] - before[name]) / wall for name in after},
                "rss": {name: sorted(_rss(p) for p in procs[name]) for name in classes},
                "prometheus_rss": _rss(server),
                "series": _own_metric(prometheus, "prometheus_tsdb_head_series"),
                "ingest": (appended_after - appended_before) / wall,
                "samples_per_scrape": _scalar(prometheus, "avg(scrape_samples_scraped)"),
                "scrape_p99_s": _scalar(prometheus, "quantile(0.99, scrape_duration_seconds)"),
                "missed": missed, "expected": expected * size, "busy": busy, "up": up,
            }
        finally:
            prometheus.stop()
            for host in hosts:
                host.stop()


def main() -> int:
    def options(parser) -> None:
        parser.add_argument("--sizes", default="", help="fleet sizes to try, comma-separated (default 8,16,32; --quick 4)")
        parser.add_argument("--workload", metavar="SPEC", help="every host serves this neuron-workload preset instead "
                                                                 "of the busy kernel, e.g. bert-base:cores=24")
    args = common.parse_args(__doc__.splitlines()[0], options)
    if not os.access(PROMETHEUS, os.X_OK):
        print(f"{PROMETHEUS} is missing: run scripts/install-system-deps.sh (Debian's prometheus)")
        return 1
    sizes = [int(s) for s in args.sizes.split(",") if s] or ([4] if args.quick else [8, 16, 32])
    window_s = 30.0 if args.quick else 60.0
    host_spec = fleet_hosts(hosts=1, instance_type=INSTANCE_TYPE)[0]
    if args.workload:
        check_placement(host_spec, [args.workload], "--workload")  # refused before anything starts
    busy_per_host = _cores_taken(args.workload) if args.workload else CORES
    classes = CLASSES + (("neuron-workload",) if args.workload else ())
    what = f"serving {args.workload}" if args.workload else "busy"
    load_before = os.getloadavg()[0]
    results = []
    for size in sizes:
        print(f"fleet of {size} {what} {INSTANCE_TYPE} hosts: starting", flush=True)
        results.append(trial(size, window_s, args.workload))
    print(f"\n{INSTANCE_TYPE} hosts, " + (f"each serving {args.workload} in its daemon" if args.workload else
                                        "every core under in-daemon load")
          + f", neuron-monitor and scrapes every {PERIOD_S:g} s; {window_s:g} s window; CPU in CPUs (user + system "
            "over the window)")
    rows = []
    for r in results:
        per = {name: r["cpu"][name] / r["size"] for name in classes}
        rows.append((r["size"], f"{r['startup_s']:.0f}", *(f"{per[name]:.4f}" for name in classes),
                     f"{r['cpu']['prometheus']:.3f}", f"{sum(r['cpu'].values()):.2f}",
                     *(f"{r['rss'][name][-1] / 2**20:.0f}" for name in classes),
                     f"{r['prometheus_rss'] / 2**20:.0f}", f"{r['series']:,.0f}", f"{r['ingest']:,.0f}",
                     f"{r['samples_per_scrape']:,.0f}", f"{r['scrape_p99_s'] * 1e3:.0f}",
                     f"{r['missed']} of {r['expected']}", f"{r['busy']:.0f} of {r['size'] * busy_per_host}"))
    common.print_table(("hosts", "start s", *(f"{name} CPU/host" for name in classes), "Prometheus CPU", "total CPU",
                        *(f"{name} MiB" for name in classes), "Prometheus MiB", "series", "samples/s",
                        "samples/scrape", "scrape p99 ms", "missed scrapes", "busy cores"), rows)
    print("    MiB columns: the largest resident set of that process kind in the fleet")
    print(common.machine_note(load_before))
    held = [r for r in results if r["missed"] == 0 and r["busy"] == r["size"] * busy_per_host and r["up"] == r["size"]]
    right = all(r["up"] == r["size"] and r["busy"] == r["size"] * busy_per_host for r in results)
    print(f"checked: Prometheus sees every host up and {busy_per_host} cores busy on each: {'ok' if right else 'WRONG'}")
    largest = max((r["size"] for r in held), default=0)
    common.print_result(f"{'WRONG: ' if not right else ''}fleet: largest {what} {INSTANCE_TYPE} fleet holding a "
                        f"{PERIOD_S:g} s period without missed scrapes: {largest} hosts (tried {sizes}); per host "
                        + ", ".join(f"{name} {results[-1]['cpu'][name] / results[-1]['size']:.4f} CPU" for name in classes)
                        + f"; {results[-1]['series'] / results[-1]['size']:,.0f} series per host")
    return 0


def _cores_taken(workload: str) -> int:
    """The NeuronCores neuron-workload places the preset on, on an idle host."""
    placer = idle_placer(INSTANCE_TYPE)
    catalog.build(catalog.parse_spec(workload, catalog.Settings()), placer)
    return len(placer.taken)


if __name__ == "__main__":
    raise SystemExit(main())
