"""A profile as a Chrome trace-event file (the JSON object format), which ui.perfetto.dev and
chrome://tracing open: one track per compute engine, per DMA queue and for collectives, complete ("X")
events in microseconds, and flow events ("s"/"f") from each instruction to the one that waited for it."""

from __future__ import annotations

from neurontools.daemon.isa.profile_capture import COLLECTIVES, ENGINE_NAMES

PID = 1
_COMPUTE_TRACKS = [name for name in ENGINE_NAMES.values() if name != "dma"]
TRACK_IDS = {name: i for i, name in enumerate([*_COMPUTE_TRACKS, COLLECTIVES], start=1)}
DMA_TRACK_BASE = 100  # DMA queue q is track 100 + q


def _track(record: dict) -> int:
    if record["engine"] == "dma":
        return DMA_TRACK_BASE + (int(record["dma_queues"][0][0]) if record["dma_queues"] else 0)
    return TRACK_IDS[record["engine"]]


def trace_events(profile: dict, title: str) -> dict:
    events: list[dict] = [{"ph": "M", "pid": PID, "name": "process_name", "args": {"name": title}}]
    tracks = {**{tid: name for name, tid in TRACK_IDS.items()}}
    records = profile["instructions"]
    for r in records:
        args = {"index": r["index"], "operands": ", ".join(r["reads"] + r["writes"]), "flops": r["flops"],
                "finish_us": r["finish_ns"] / 1000}
        if r["engine"] == "dma":
            args.update(bytes=r["bytes"], direction=r["direction"], fused=r["fused"])
            for queue, begin, end in r["dma_queues"] or [[0, r["start_ns"], r["end_ns"]]]:
                tid = DMA_TRACK_BASE + int(queue)
                tracks[tid] = f"dma queue {int(queue)}"
                events.append({"ph": "X", "pid": PID, "tid": tid, "name": r["opcode"], "cat": "dma",
                               "ts": begin / 1000, "dur": (end - begin) / 1000, "args": args})
        else:
            events.append({"ph": "X", "pid": PID, "tid": TRACK_IDS[r["engine"]], "name": r["opcode"],
                           "cat": r["engine"], "ts": r["start_ns"] / 1000, "dur": (r["end_ns"] - r["start_ns"]) / 1000,
                           "args": args})
    by_index = {r["index"]: r for r in records}
    for r in records:  # dependency flows: producer's finish -> consumer's start
        producer = by_index.get(r["waits_for"]) if r["waits_for"] is not None else None
        if producer is None:
            continue
        flow = {"pid": PID, "name": "dependency", "cat": "dependency", "id": r["index"]}
        events.append({**flow, "ph": "s", "tid": _track(producer), "ts": producer["start_ns"] / 1000})
        events.append({**flow, "ph": "f", "bp": "e", "tid": _track(r), "ts": r["start_ns"] / 1000})
    for tid, name in sorted(tracks.items()):
        events.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_name", "args": {"name": name}})
        events.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_sort_index", "args": {"sort_index": tid}})
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"source": "neurontools neuron-profile", "device_time_ns": profile["device_time_ns"]}}
