"""What a profile says: totals, engine utilization, DMA throughput, FLOPs against peak, the top
instructions, the critical path and the bound, in figures and in plain language."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from neurontools.daemon.isa import cost_model
from neurontools.daemon.isa.profile_capture import COLLECTIVES, ENGINE_NAMES

COMPUTE = [ENGINE_NAMES[e] for e in cost_model.COMPUTE_ENGINES]
ENGINE_VALUES = {name: engine for engine, name in ENGINE_NAMES.items()}


@dataclass
class OpcodeTime:
    opcode: str
    engine: str
    count: int
    busy_ns: float


@dataclass
class Analysis:
    total_ns: int
    busy_ns: dict[str, int]                 # per engine, as the daemon counts it
    utilization: dict[str, float]           # busy / total
    instructions: dict[str, int]
    flops: int
    flops_of_peak: float                    # FLOPs / (total time x the Tensor engine's peak)
    dma_bytes: int
    dma_transfers: int
    dma_active_ns: float                    # time at least one DMA queue moves data
    dma_bytes_per_s: float                  # while active
    dma_of_hbm_bandwidth: float             # that rate against the core's share of HBM bandwidth
    split: dict[str, float]                 # compute / DMA / latency ns (cost_model.time_split)
    bound: str                              # the largest part of the split
    top: list[OpcodeTime]
    critical_path: list[int]                # instruction indices, first to last
    critical_by_engine: dict[str, float] = field(default_factory=dict)  # ns on the path, per engine or "wait"
    findings: list[str] = field(default_factory=list)


def union_ns(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def critical_path(records: list[dict]) -> list[int]:
    """From the instruction that finishes last, back through what held each one up: the dependency it
    waited for, else the previous instruction on its engine."""
    if not records:
        return []
    by_index = {r["index"]: r for r in records}
    current = max(records, key=lambda r: (r["finish_ns"], r["index"]))
    path = [current["index"]]
    while True:
        previous = current["waits_for"] if current["waits_for"] is not None else current["after"]
        if previous is None or previous not in by_index:
            break
        current = by_index[previous]
        path.append(current["index"])
    return path[::-1]


def analyze(profile: dict, top: int = 10) -> Analysis:
    records = profile["instructions"]
    total = profile["device_time_ns"]
    busy = profile["engine_busy_ns"]
    utilization = {engine: (ns / total if total else 0.0) for engine, ns in busy.items()}
    flops = sum(r["flops"] for r in records)
    transfers = [r for r in records if r["engine"] == "dma" and not r["fused"]]
    dma_bytes = sum(r["bytes"] for r in transfers)
    active = union_ns([(q[1], q[2]) for r in transfers for q in r["dma_queues"]])
    rate = dma_bytes / (active / 1e9) if active else 0.0
    split = cost_model.time_split(total, {ENGINE_VALUES[e]: ns for e, ns in busy.items()})
    by_opcode: dict[tuple[str, str], OpcodeTime] = {}
    for r in records:
        key = (r["opcode"], r["engine"])
        entry = by_opcode.setdefault(key, OpcodeTime(r["opcode"], r["engine"], 0, 0.0))
        entry.count += 1
        entry.busy_ns += r["busy_ns"] if r["engine"] != COLLECTIVES else r["end_ns"] - r["start_ns"]
    path = critical_path(records)
    analysis = Analysis(
        total_ns=total, busy_ns=busy, utilization=utilization, instructions=profile["engine_instructions"],
        flops=flops, flops_of_peak=flops / (total / 1e9 * cost_model.PEAK_FLOPS_PER_S) if total else 0.0,
        dma_bytes=dma_bytes, dma_transfers=len(transfers), dma_active_ns=active, dma_bytes_per_s=rate,
        dma_of_hbm_bandwidth=rate / cost_model.HBM_BYTES_PER_S_PER_CORE,
        split=split, bound=max(split, key=split.get),
        top=sorted(by_opcode.values(), key=lambda o: -o.busy_ns)[:top], critical_path=path)
    analysis.critical_by_engine = _path_time(records, path)
    analysis.findings = _findings(analysis, records)
    return analysis


def _path_time(records: list[dict], path: list[int]) -> dict[str, float]:
    """Where the critical path's time goes, walked in time: the part of each instruction's engine time
    not already covered by the one before it on the path (DMA transfers on parallel queues overlap),
    and the gaps until the next one starts ("wait": latencies, semaphores, DMA start). The parts add
    up to the path's end."""
    by_index = {r["index"]: r for r in records}
    spent: dict[str, float] = defaultdict(float)
    clock = 0.0
    for index in path:
        r = by_index[index]
        spent["wait"] += max(0.0, r["start_ns"] - clock)
        spent[r["engine"]] += max(0.0, r["end_ns"] - max(r["start_ns"], clock))
        clock = max(clock, r["end_ns"])
    if path:
        spent["wait"] += max(0.0, by_index[path[-1]]["finish_ns"] - clock)
    return dict(spent)


def _findings(a: Analysis, records: list[dict]) -> list[str]:
    total = a.total_ns or 1
    busiest = max(COMPUTE, key=lambda e: a.busy_ns.get(e, 0))
    idle = 1 - a.utilization.get(busiest, 0.0)
    out = []
    if a.bound == "DMA":
        loads = sum(r["bytes"] for r in records if r["engine"] == "dma" and r["direction"] == "load" and not r["fused"])
        out.append(f"DMA-bound: the DMA queues are busy {a.utilization.get('dma', 0):.0%} of the execution; the "
                   f"busiest compute engine ({busiest}) waits {idle:.0%} of the time. {loads / max(1, a.dma_bytes):.0%} "
                   f"of the bytes are loads from HBM: fewer, larger transfers (each pays a "
                   f"{cost_model.DMA_START_LATENCY_NS / 1000:.1f} µs start) or keeping reused data in SBUF would "
                   "shorten it.")
    elif a.bound == "compute":
        out.append(f"Compute-bound on the {busiest} engine: busy {a.utilization.get(busiest, 0):.0%} of the execution. "
                   + ("Its matmuls run at the array's rate; fewer FLOPs or a lower precision would shorten it."
                      if busiest == "tensor" else
                      f"Moving work from the {busiest} engine to an idle one, or fusing its passes, would shorten it."))
    else:
        out.append(f"Latency-bound: no engine is busy most of the time (busiest: {busiest} "
                   f"{a.utilization.get(busiest, 0):.0%}, DMA {a.utilization.get('dma', 0):.0%}); "
                   f"{a.split['latency'] / total:.0%} of the time goes to dependency waits and latencies along "
                   f"the critical path. Overlapping independent work (more tiles in flight) would shorten it.")
    waited = a.critical_by_engine.get("wait", 0.0)
    if a.critical_path:
        out.append(f"Critical path: {len(a.critical_path)} instructions; "
                   + ", ".join(f"{engine} {ns / total:.0%}" for engine, ns in
                               sorted(a.critical_by_engine.items(), key=lambda kv: -kv[1]) if ns > 0)
                   + f" of the execution ({waited / total:.0%} is waiting between them).")
    if a.flops:
        out.append(f"FLOPs: {a.flops:,} at {a.flops_of_peak:.1%} of the Tensor engine's peak "
                   f"({cost_model.PEAK_FLOPS_PER_S / 1e12:.2f} TFLOPS).")
    return out


def render(a: Analysis, title: str) -> str:
    """The terminal summary."""
    lines = [title, f"device time {a.total_ns / 1000:,.3f} µs (modeled NeuronCore-v2)", "",
             "engine      busy µs   utilization  instructions"]
    for engine, ns in a.busy_ns.items():
        lines.append(f"{engine:<10} {ns / 1000:9.3f}   {a.utilization[engine]:10.1%}  {a.instructions.get(engine, 0):12,}")
    lines += ["", f"DMA: {a.dma_transfers:,} transfers, {a.dma_bytes:,} bytes, active {a.dma_active_ns / 1000:,.3f} µs, "
                  f"{a.dma_bytes_per_s / 2**30:,.1f} GiB/s while active ({a.dma_of_hbm_bandwidth:.0%} of the core's "
                  f"HBM bandwidth)",
              f"time split: compute {a.split['compute'] / 1000:,.3f} µs, DMA {a.split['DMA'] / 1000:,.3f} µs, "
              f"latency {a.split['latency'] / 1000:,.3f} µs -> {a.bound}-bound", "",
              "top instructions by engine time", "opcode               engine      count    busy µs   share"]
    for o in a.top:
        lines.append(f"{o.opcode:<20} {o.engine:<10} {o.count:6,} {o.busy_ns / 1000:10.3f}  {o.busy_ns / max(1, a.total_ns):6.1%}")
    lines += ["", "findings"] + [f"- {text}" for text in a.findings]
    return "\n".join(lines) + "\n"


def as_dict(a: Analysis) -> dict:
    """The machine-readable summary (view --json)."""
    return {"device_time_ns": a.total_ns, "engine_busy_ns": a.busy_ns, "utilization": a.utilization,
            "engine_instructions": a.instructions, "flops": a.flops, "flops_of_peak": a.flops_of_peak,
            "dma": {"bytes": a.dma_bytes, "transfers": a.dma_transfers, "active_ns": a.dma_active_ns,
                    "bytes_per_s": a.dma_bytes_per_s, "of_hbm_bandwidth": a.dma_of_hbm_bandwidth},
            "time_split_ns": a.split, "bound": a.bound,
            "top": [o.__dict__ for o in a.top], "critical_path": a.critical_path,
            "critical_path_ns": a.critical_by_engine, "findings": a.findings}

