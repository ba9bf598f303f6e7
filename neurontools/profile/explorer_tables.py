"""A profile as Neuron Explorer's processed-profile Parquet tables, so that analysis code written for
real profiles (pandas, DuckDB, pyarrow) runs on ours.

We follow the documented schema version SCHEMA_VERSION (aws-neuron-sdk,
tools/neuron-explorer/profile-schema-reference.rst): `Metadata`, `Summary`, `Instruction` and
`DmaPacket`, with the documented column names and types. Every required column is written; of the
optional ones, those our cost model knows. Values we do not have are stated, never invented: there is
no NTFF (ntff_version 0), no CRC (0), no compiler hierarchy (bir_id is the instruction's index), and
`Metadata.is_simulation` is true. Each file also carries the schema version in its Parquet key-value
metadata. pyarrow is an optional dependency (`pip install 'neurontools[profile]'`).
"""

from __future__ import annotations

from pathlib import Path

from neurontools import __version__
from neurontools.daemon.isa import cost_model
from neurontools.profile.analysis import Analysis, union_ns
from neurontools.profile.profile_file import ProfileFileError, make_directory, write_atomically

SCHEMA_VERSION = "7.4.0"
TABLES = ("Metadata", "Summary", "Instruction", "DmaPacket")
DMA_QUEUE_TYPE = "data"  # DmaQueueType: our transfers move tensors and weights between HBM and SBUF


def _pyarrow():
    try:
        import pyarrow  # noqa: PLC0415 (optional dependency)
        import pyarrow.parquet  # noqa: F401, PLC0415
    except ImportError:
        raise ProfileFileError("Parquet output needs pyarrow: pip install 'neurontools[profile]' "
                               "(or pyarrow)") from None
    return pyarrow


def _schemas(pa) -> dict:
    # The reference types these numbers "number (float)", OpenAPI's 32-bit float (it writes "number (double)"
    # where it means 64 bits), so they are float32 here, as a script written for real profiles expects.
    i64, i32, f32, s, b = pa.int64(), pa.int32(), pa.float32(), pa.string(), pa.bool_()
    engine_fields = [(f"{engine}_engine_{what}", t) for engine in ("tensor", "vector", "scalar", "gpsimd")
                     for what, t in (("instruction_time", f32), ("active_time", f32), ("active_time_percent", f32),
                                     ("instruction_count", i64))]
    return {
        "Metadata": [("profile_schema_version", s), ("ntff_version", i32), ("num_physical_cores", i32),
                     ("vnc_enabled", b), ("first_hw_timestamp", i64), ("last_hw_timestamp", i64), ("first_ts", s),
                     ("last_ts", s), ("dma_ddr_bandwidth", f32), ("num_dma_engines_per_neuroncore", i32),
                     ("hbm_ddr_bandwidth", f32), ("tensor_engine_num_rows", i64), ("tensor_engine_num_cols", i64),
                     ("tensor_engine_clock_freq", f32), ("vector_engine_clock_freq", f32),
                     ("vector_engine_num_channels", i64), ("scalar_engine_clock_freq", f32),
                     ("scalar_engine_num_channels", i64), ("gpsimd_engine_clock_freq", f32),
                     ("gpsimd_engine_num_channels", i64), ("neuroncore_clock_freq", f32), ("ticks_per_nanosec", i64),
                     ("instance_type", s), ("explorer_version", s), ("neuroncore_idx", i64), ("profile_name", s),
                     ("is_simulation", b)],
        "Summary": [("total_time", f32), ("model_flops", i64), ("hardware_flops", i64), ("dma_active_time", f32),
                    ("dma_active_time_percent", f32), ("dma_transfer_average_bytes", f32),
                    ("dma_transfer_count", i64), ("dma_transfer_total_bytes", i64), ("dma_queue_count", i64),
                    ("hbm_write_bytes", i64), ("hbm_read_bytes", i64), *engine_fields,
                    ("matmul_instruction_count", i64), ("mfu_estimated_percent", f32), ("cc_op_time", f32),
                    ("cc_op_count", i64), ("total_exec_time", f32), ("total_active_time", f32),
                    ("total_active_time_percent", f32)],
        "Instruction": [("start_ts", i64), ("end_ts", i64), ("duration_ns", i64), ("engine", s),
                        ("timeline_track", s), ("opcode", s), ("operands", s), ("id", i64), ("pc", i64),
                        ("bir_id", s), ("hbm_read_bytes", i64), ("hbm_write_bytes", i64), ("raw_flops", i64)],
        "DmaPacket": [("start_ts", i64), ("end_ts", i64), ("duration_ns", i64), ("id", i64), ("packet_idx", i32),
                      ("packet_aggregation_id", i64), ("engine_idx", i64), ("read_bytes", i64), ("write_bytes", i64),
                      ("transfer_bytes", i64), ("throughput", f32), ("queue_type", s), ("queue_name", s),
                      ("queue_idx", i64), ("crc", i64)],
    }


def _hbm_bytes(record: dict) -> tuple[int, int]:
    """(read, written) HBM bytes of one record: loads read HBM, stores write it, copies do both."""
    if record["engine"] != "dma" or record["fused"]:
        return 0, 0
    nbytes = record["bytes"]
    return {"load": (nbytes, 0), "store": (0, nbytes)}.get(record["direction"], (nbytes, nbytes))


def _rows(profile: dict, analysis: Analysis, name: str) -> dict[str, list]:
    records = profile["instructions"]
    total = profile["device_time_ns"]
    source = profile.get("source", {})
    summary: dict[str, object] = {
        "total_time": total / 1e9, "model_flops": analysis.flops, "hardware_flops": analysis.flops,
        "dma_active_time": analysis.dma_active_ns / 1e9,
        "dma_active_time_percent": 100 * analysis.dma_active_ns / total if total else 0.0,
        "dma_transfer_average_bytes": analysis.dma_bytes / analysis.dma_transfers if analysis.dma_transfers else 0.0,
        "dma_transfer_count": analysis.dma_transfers, "dma_transfer_total_bytes": analysis.dma_bytes,
        "dma_queue_count": len({q[0] for r in records if r["engine"] == "dma" for q in r["dma_queues"]}),
        "hbm_read_bytes": sum(_hbm_bytes(r)[0] for r in records),
        "hbm_write_bytes": sum(_hbm_bytes(r)[1] for r in records),
        "matmul_instruction_count": sum(1 for r in records if r["opcode"] == "matmul"),
        "mfu_estimated_percent": 100 * analysis.flops_of_peak,
        "cc_op_time": sum(r["end_ns"] - r["start_ns"] for r in records if r["engine"] == "collectives") / 1e9,
        "cc_op_count": sum(1 for r in records if r["engine"] == "collectives"),
        "total_exec_time": total / 1e9,
    }
    for engine in ("tensor", "vector", "scalar", "gpsimd"):
        mine = [r for r in records if r["engine"] == engine]
        active = union_ns([(r["start_ns"], r["end_ns"]) for r in mine])
        summary[f"{engine}_engine_instruction_time"] = sum(r["end_ns"] - r["start_ns"] for r in mine) / 1e9
        summary[f"{engine}_engine_active_time"] = active / 1e9
        summary[f"{engine}_engine_active_time_percent"] = 100 * active / total if total else 0.0
        summary[f"{engine}_engine_instruction_count"] = len(mine)
    everything = union_ns([(r["start_ns"], r["end_ns"]) for r in records if not r["fused"]])
    summary["total_active_time"] = everything / 1e9
    summary["total_active_time_percent"] = 100 * everything / total if total else 0.0

    metadata = {
        "profile_schema_version": SCHEMA_VERSION, "ntff_version": 0, "num_physical_cores": 1, "vnc_enabled": False,
        "first_hw_timestamp": 0, "last_hw_timestamp": total, "first_ts": "0", "last_ts": str(total),
        "dma_ddr_bandwidth": cost_model.DMA_ENGINE_BYTES_PER_S * cost_model.DMA_ENGINES_PER_CORE,
        "num_dma_engines_per_neuroncore": cost_model.DMA_ENGINES_PER_CORE,
        "hbm_ddr_bandwidth": cost_model.HBM_BYTES_PER_S_PER_CORE,
        "tensor_engine_num_rows": 128, "tensor_engine_num_cols": 128,
        "tensor_engine_clock_freq": cost_model.TENSOR_CLOCK_HZ / 1e9,
        "vector_engine_clock_freq": cost_model.VECTOR_CLOCK_HZ / 1e9, "vector_engine_num_channels": 128,
        "scalar_engine_clock_freq": cost_model.SCALAR_CLOCK_HZ / 1e9, "scalar_engine_num_channels": 128,
        "gpsimd_engine_clock_freq": cost_model.GPSIMD_CLOCK_HZ / 1e9, "gpsimd_engine_num_channels": 128,
        "neuroncore_clock_freq": cost_model.SRAM_CLOCK_HZ / 1e9, "ticks_per_nanosec": 1,
        "instance_type": source.get("instance_type", ""), "explorer_version": f"neurontools {__version__}",
        "neuroncore_idx": source.get("core_id", 0), "profile_name": name, "is_simulation": True,
    }
    instruction: dict[str, list] = {key: [] for key in ("start_ts", "end_ts", "duration_ns", "engine", "timeline_track",
                                                        "opcode", "operands", "id", "pc", "bir_id", "hbm_read_bytes",
                                                        "hbm_write_bytes", "raw_flops")}
    packets: dict[str, list] = {key: [] for key in ("start_ts", "end_ts", "duration_ns", "id", "packet_idx",
                                                    "packet_aggregation_id", "engine_idx", "read_bytes", "write_bytes",
                                                    "transfer_bytes", "throughput", "queue_type", "queue_name",
                                                    "queue_idx", "crc")}
    for r in records:
        start, end = round(r["start_ns"]), round(r["end_ns"])
        read, written = _hbm_bytes(r)
        for key, value in (("start_ts", start), ("end_ts", end), ("duration_ns", end - start), ("engine", r["engine"]),
                           ("timeline_track", r["engine"]), ("opcode", r["opcode"]),
                           ("operands", ", ".join(r["reads"] + r["writes"])), ("id", r["index"]), ("pc", r["index"]),
                           ("bir_id", str(r["index"])), ("hbm_read_bytes", read), ("hbm_write_bytes", written),
                           ("raw_flops", r["flops"])):
            instruction[key].append(value)
        queues = r["dma_queues"]
        for packet, (queue, begin, stop) in enumerate(queues):
            share = r["bytes"] // len(queues) + (r["bytes"] % len(queues) if packet == len(queues) - 1 else 0)
            begin_ns, stop_ns = round(begin), round(stop)
            duration = max(1, stop_ns - begin_ns)
            for key, value in (("start_ts", begin_ns), ("end_ts", stop_ns), ("duration_ns", stop_ns - begin_ns),
                               ("id", len(packets["id"])), ("packet_idx", packet), ("packet_aggregation_id", r["index"]),
                               ("engine_idx", int(queue)), ("read_bytes", share), ("write_bytes", share),
                               ("transfer_bytes", share), ("throughput", share / (duration / 1e9)),
                               ("queue_type", DMA_QUEUE_TYPE), ("queue_name", f"q{int(queue)}"),
                               ("queue_idx", int(queue)), ("crc", 0)):
                packets[key].append(value)
    return {"Metadata": {k: [v] for k, v in metadata.items()}, "Summary": {k: [v] for k, v in summary.items()},
            "Instruction": instruction, "DmaPacket": packets}


def _column(pa, values: list, kind):
    # pyarrow refuses a Python number that float32 cannot hold exactly; the documented type rounds it.
    if kind == pa.float32():
        return pa.array(values, type=pa.float64()).cast(kind, safe=False)
    return pa.array(values, type=kind)


def write_tables(directory: Path, profile: dict, analysis: Analysis, name: str) -> list[Path]:
    """Metadata.parquet, Summary.parquet, Instruction.parquet and DmaPacket.parquet in `directory`."""
    pa = _pyarrow()
    import pyarrow.parquet as pq  # noqa: PLC0415

    make_directory(directory)
    rows = _rows(profile, analysis, name)
    written = []
    for table, fields in _schemas(pa).items():
        schema = pa.schema(fields, metadata={"profile_schema_version": SCHEMA_VERSION,
                                            "producer": f"neurontools {__version__} neuron-profile"})
        data = pa.table({column: _column(pa, rows[table][column], kind) for column, kind in fields}, schema=schema)
        sink = pa.BufferOutputStream()
        pq.write_table(data, sink)
        path = directory / f"{table}.parquet"
        write_atomically(path, sink.getvalue().to_pybytes())
        written.append(path)
    return written
