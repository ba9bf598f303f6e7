"""The JSON summary of a run: per workload, latency percentiles, throughput, modeled device time next
to wall time, and the HBM it holds by category.

Two clocks, labelled (DESIGN principle 3): `*_seconds` under "latency" are wall-clock times seen by
the client (queueing and the daemon's own overhead included); under "device_latency" they are the
modeled NeuronCore-v2 times. "modeled" throughput is what the real hardware would sustain with every
replica busy back to back: replicas x items per request / mean modeled time per request.

A workload run in the daemon (a request load per replica) reads its figures from the loads' request
statistics: requests by status and latency histograms (percentiles within the histograms' 2 %),
its latencies on the daemon's clock (no RPC). A workload run per call reads them from each request's
record, on the client's wall clock.

Failed requests are counted, not timed: "requests_by_status" has "ok" and, for a failed request,
the status of the execution that failed it (timed_out, completed_with_err...). "executions_by_status"
is the daemon's own count for the session, read just before it closed (every execution of a request,
the failed ones included).
"""

from __future__ import annotations

import time

import numpy as np

from neurontools import latency_histogram
from neurontools.workloads.runner import WorkloadRun, WorkloadRunner

PERCENTILES = (50, 90, 99)


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    data = np.asarray(values, dtype=np.float64)
    out = {f"p{p}": float(np.percentile(data, p)) for p in PERCENTILES}
    return out | {"mean": float(data.mean()), "max": float(data.max())}


def histogram_percentiles(histograms: list) -> dict[str, float] | None:
    """The same figures as percentiles(), in seconds, from pb.Histograms (summed over replicas)."""
    counts = [0] * latency_histogram.BUCKETS
    total, sum_ns = 0, 0
    for histogram in histograms:
        for index, count in enumerate(histogram.bucket_counts, histogram.first_bucket):
            counts[index] += count
        total, sum_ns = total + histogram.count, sum_ns + histogram.sum_ns
    if not total:
        return None
    values = latency_histogram.percentiles(counts, [p / 100 for p in PERCENTILES] + [1.0])
    out = {f"p{p}": value / 1e9 for p, value in zip(PERCENTILES, values)}
    return out | {"mean": sum_ns / total / 1e9, "max": values[-1] / 1e9}


def _served_per_call(run: WorkloadRun, records: list) -> dict:
    """The figures from each request's record (wall clock)."""
    device = [r.device_seconds for r in records]
    out = {"ok": len(records), "items": sum(r.items for r in records), "executions": sum(r.executions for r in records),
           "latency_seconds": percentiles([r.wall_seconds for r in records]),
           "device_latency_seconds": percentiles(device),
           "device_seconds": sum(device), "wall_seconds": sum(r.wall_seconds for r in records)}
    if run.workload.kind == "decoder":
        out["time_to_first_token_seconds"] = percentiles([r.first_item_seconds for r in records
                                                          if r.first_item_seconds is not None])
        out["device_time_to_first_token_seconds"] = percentiles([r.first_item_device_seconds for r in records
                                                                 if r.first_item_device_seconds is not None])
        out["inter_token_latency_seconds"] = percentiles([s for r in records for s in r.item_seconds])
        out["device_inter_token_latency_seconds"] = percentiles([s for r in records for s in r.item_device_seconds])
    return out


def _served_in_daemon(run: WorkloadRun, loads: list) -> dict:
    """The figures from the request loads' statistics (the daemon's clock)."""
    stats = [load.requests for load in loads]
    ok = sum(s.requests.completed for s in stats)
    latency = [s.latency for s in stats]
    modeled = [s.modeled_latency for s in stats]
    out = {"ok": ok, "items": ok * run.items_per_request, "executions": ok * run.steps_per_request,
           "latency_seconds": histogram_percentiles(latency), "device_latency_seconds": histogram_percentiles(modeled),
           "device_seconds": sum(h.sum_ns for h in modeled) / 1e9, "wall_seconds": sum(h.sum_ns for h in latency) / 1e9}
    if ok and run.rate is None:
        # Back to back, a replica's cores work all of a request but its host time (fixed costs).
        out["modeled_core_utilization"] = 1 - run.host_seconds_per_request * ok / out["device_seconds"]
    if run.workload.kind == "decoder":
        for key, name in (("time_to_first_token_seconds", "first_item_latency"),
                          ("device_time_to_first_token_seconds", "modeled_first_item_latency"),
                          ("inter_token_latency_seconds", "item_latency"),
                          ("device_inter_token_latency_seconds", "modeled_item_latency")):
            out[key] = histogram_percentiles([getattr(s, name) for s in stats])
    return out


def served_figures(run: WorkloadRun, records: list, loads: list) -> dict:
    """ok requests, items, executions, latencies...: from the loads' statistics when the workload runs
    in the daemon, else from the requests' records."""
    return _served_in_daemon(run, loads) if loads else _served_per_call(run, records)


def workload_summary(name: str, run: WorkloadRun) -> dict:
    workload = run.workload
    with run.lock:
        records = list(run.records)
        loads = list(run.loads)
        failed = dict(run.failed)
        last_failure = run.last_failure
    unit = workload.unit
    window = (run.stopped or time.monotonic()) - run.started if run.started is not None else None
    served = served_figures(run, records, loads)
    items, device = served.pop("items"), served["device_seconds"]
    out: dict = {
        "name": name, "kind": workload.kind, "tag": run.tag, "cores": workload.cores,
        "replicas": len(workload.groups), "config": workload.describe(),
        "served": "in the daemon" if loads else "per call",
        "status": _status(run.error, served["ok"], failed),
        "error": run.error, "last_request_error": last_failure, "load_seconds": round(run.load_seconds, 3),
        "requests": served["ok"] + sum(failed.values()),
        "requests_by_status": {"ok": served.pop("ok")} | dict(sorted(failed.items())),
        "executions_by_status": dict(run.executions) if run.executions else None,
        unit: items, "executions": served.pop("executions"),
        "run_seconds": window,
        f"{unit}_per_second": items / window if window else None,
        f"modeled_{unit}_per_second": (len(workload.groups) * items / device) if device else None,
        "memory_bytes": dict(run.memory), "memory_bytes_total": sum(run.memory.values()),
    } | served
    if run.verification is not None:
        out["max_abs_error_vs_numpy"], out["max_abs_numpy"] = run.verification
    out["device_to_wall_ratio"] = out["device_seconds"] / out["wall_seconds"] if out["wall_seconds"] else None
    return out


def _status(error: str | None, ok: int, failed: dict[str, int]) -> str:
    """ok; "errors" when some requests failed but the workload served on; "error" when it stopped."""
    if error:
        return "error"
    if failed:
        return "errors"
    return "ok" if ok else "no requests"


def summary(runner: WorkloadRunner, **context) -> dict:
    """`context` (instance type, duration, mode...) goes first in the document."""
    return context | {"workloads": [workload_summary(name, run) for name, run in runner.runs.items()]}
