"""The JSON summary of a run: per workload, latency percentiles, throughput, modeled device time next
to wall time, and the HBM it holds by category.

Two clocks, labelled (DESIGN principle 3): `*_seconds` under "latency" are wall-clock times seen by
the client (queueing and the daemon's own overhead included); under "device_latency" they are the
modeled NeuronCore-v2 times. "modeled" throughput is what the real hardware would sustain with every
replica busy back to back: replicas x items per request / mean modeled time per request.

Failed requests are counted, not timed: "requests_by_status" has "ok" and, for a failed request,
the status of the execution that failed it (timed_out, completed_with_err...). "executions_by_status"
is the daemon's own count for the session, read just before it closed (every execution of a request,
the failed ones included).
"""

from __future__ import annotations

import time

import numpy as np

from neurontools.workloads.runner import WorkloadRun, WorkloadRunner

PERCENTILES = (50, 90, 99)


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    data = np.asarray(values, dtype=np.float64)
    out = {f"p{p}": float(np.percentile(data, p)) for p in PERCENTILES}
    return out | {"mean": float(data.mean()), "max": float(data.max())}


def workload_summary(name: str, run: WorkloadRun) -> dict:
    workload = run.workload
    with run.lock:
        records = list(run.records)
        failed = dict(run.failed)
        last_failure = run.last_failure
    unit = workload.unit
    window = (run.stopped or time.monotonic()) - run.started if run.started is not None else None
    items = sum(r.items for r in records)
    device = [r.device_seconds for r in records]
    out: dict = {
        "name": name, "kind": workload.kind, "tag": run.tag, "cores": workload.cores,
        "replicas": len(workload.groups), "config": workload.describe(),
        "status": _status(run.error, records, failed),
        "error": run.error, "last_request_error": last_failure, "load_seconds": round(run.load_seconds, 3),
        "requests": len(records) + sum(failed.values()),
        "requests_by_status": {"ok": len(records)} | dict(sorted(failed.items())),
        "executions_by_status": dict(run.executions) if run.executions else None,
        unit: items, "executions": sum(r.executions for r in records),
        "run_seconds": window,
        f"{unit}_per_second": items / window if window else None,
        f"modeled_{unit}_per_second": (len(workload.groups) * items / sum(device)) if device and sum(device) else None,
        "latency_seconds": percentiles([r.wall_seconds for r in records]),
        "device_latency_seconds": percentiles(device),
        "device_seconds": sum(device), "wall_seconds": sum(r.wall_seconds for r in records),
        "memory_bytes": dict(run.memory), "memory_bytes_total": sum(run.memory.values()),
    }
    if run.verification is not None:
        out["max_abs_error_vs_numpy"], out["max_abs_numpy"] = run.verification
    out["device_to_wall_ratio"] = out["device_seconds"] / out["wall_seconds"] if out["wall_seconds"] else None
    if workload.kind == "decoder":
        out["time_to_first_token_seconds"] = percentiles([r.first_item_seconds for r in records
                                                          if r.first_item_seconds is not None])
        out["device_time_to_first_token_seconds"] = percentiles([r.first_item_device_seconds for r in records
                                                                 if r.first_item_device_seconds is not None])
        out["inter_token_latency_seconds"] = percentiles([s for r in records for s in r.item_seconds])
        out["device_inter_token_latency_seconds"] = percentiles([s for r in records for s in r.item_device_seconds])
    return out


def _status(error: str | None, records: list, failed: dict[str, int]) -> str:
    """ok; "errors" when some requests failed but the workload served on; "error" when it stopped."""
    if error:
        return "error"
    if failed:
        return "errors"
    return "ok" if records else "no requests"


def summary(runner: WorkloadRunner, **context) -> dict:
    """`context` (instance type, duration, mode...) goes first in the document."""
    return context | {"workloads": [workload_summary(name, run) for name, run in runner.runs.items()]}
