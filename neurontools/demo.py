"""The README's main job: an embedded inf2.48xlarge neurond with a real workload on it.

It starts a daemon in this process, opens a runtime session on every device as a user program
would, loads a small MLP kernel (DMA -> Tensor-engine matmul -> Scalar-engine GELU -> Vector-engine
row max -> DMA) on each core, checks its numbers against numpy, runs it for a while, and prints
what the tools see: the neuron-ls table and per-core utilization from two snapshots.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np

from neurontools._proto import neurond_pb2 as pb
from neurontools.client import Device, Session
from neurontools.daemon.embedded import running_daemon

REPEAT = 3000  # matmul+GELU steps of the load kernel: a few milliseconds of device time


def _ref(name: str, rows: tuple[int, int] | None = None) -> pb.Ref:
    ref = pb.Ref(name=name)
    if rows:
        ref.slices.add(start=rows[0], stop=rows[1])
    return ref


def mlp_program(k: int = 128, m: int = 64, n: int = 256, weights: np.ndarray | None = None,
                repeat: int = 1) -> pb.Program:
    """out[m, n] = gelu(xT[k, m].T @ w[k, n]); rowmax[m, 1] = max over n. Weights are a constant.

    `repeat` > 1 recomputes the matmul and GELU that many times (same result, longer kernel)."""
    f32 = pb.FLOAT32
    program = pb.Program(
        parameters=[pb.Parameter(name="xT", kind=pb.INPUT, shape=[k, m], dtype=f32),
                    pb.Parameter(name="out", kind=pb.OUTPUT, shape=[m, n], dtype=f32),
                    pb.Parameter(name="rowmax", kind=pb.OUTPUT, shape=[m, 1], dtype=f32)],
        constants=[pb.Constant(name="w", shape=[k, n], dtype=f32,
                               data=b"" if weights is None else np.asarray(weights, np.float32).tobytes())],
        tiles=[pb.Tile(name="x_sb", buffer=pb.SBUF, shape=[k, m], dtype=f32),
               pb.Tile(name="w_sb", buffer=pb.SBUF, shape=[k, n], dtype=f32),
               pb.Tile(name="acc", buffer=pb.PSUM, shape=[m, n], dtype=f32),
               pb.Tile(name="y_sb", buffer=pb.SBUF, shape=[m, n], dtype=f32),
               pb.Tile(name="max_sb", buffer=pb.SBUF, shape=[m, 1], dtype=f32)])
    ops = program.instructions
    ops.add(dma_copy=pb.DmaCopy(dst=_ref("x_sb"), src=_ref("xT")))
    ops.add(dma_copy=pb.DmaCopy(dst=_ref("w_sb"), src=_ref("w")))
    for _ in range(repeat):
        ops.add(matmul=pb.Matmul(dst=_ref("acc"), stationary=_ref("x_sb"), moving=_ref("w_sb")))
        ops.add(activation=pb.Activation(dst=_ref("y_sb"), src=_ref("acc"), function=pb.GELU))
    ops.add(tensor_reduce=pb.TensorReduce(dst=_ref("max_sb"), src=_ref("y_sb"), op=pb.MAXIMUM))
    ops.add(dma_copy=pb.DmaCopy(dst=_ref("out"), src=_ref("y_sb")))
    ops.add(dma_copy=pb.DmaCopy(dst=_ref("rowmax"), src=_ref("max_sb")))
    return program


def gelu(x: np.ndarray) -> np.ndarray:
    from math import erf
    return 0.5 * x * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))


def utilization(before: pb.Snapshot, after: pb.Snapshot) -> list[float]:
    elapsed = after.monotonic_ns - before.monotonic_ns
    return [100.0 * (b.occupied_ns - a.occupied_ns) / elapsed for a, b in zip(before.cores, after.cores)]


def run(instance_type: str, seconds: float) -> int:
    rng = np.random.default_rng(0)
    x_t = rng.standard_normal((128, 64), dtype=np.float32)
    w = rng.standard_normal((128, 256), dtype=np.float32) / 8
    with running_daemon(instance_type) as daemon, Session(daemon.address, tag="demo-mlp",
                                                          command="neurontools demo") as session:
        print(f"neurond: {instance_type} on {daemon.address}; session {session.session_id} holds "
              f"NeuronCores {session.core_ids[0]}-{session.core_ids[-1]}")
        program = mlp_program(weights=w)
        per_core = []
        for core in session.core_ids:
            model = session.load_model(f"mlp-nc{core}", {core: program})
            x = session.tensor_from(x_t, core_id=core)
            out = session.allocate((64, 256), "float32", core_id=core)
            rowmax = session.allocate((64, 1), "float32", core_id=core)
            per_core.append((model, x, out, rowmax))
        model, x, out, rowmax = per_core[0]
        result = model.execute(xT=x, out=out, rowmax=rowmax)
        expected = gelu(x_t.T @ w)
        error = float(np.max(np.abs(out.read() - expected)))
        print(f"one execution on NeuronCore {session.core_ids[0]}: {result}; max |error| vs numpy {error:.2e}")
        if error > 1e-3 or not np.allclose(rowmax.read()[:, 0], expected.max(axis=1), atol=1e-3):
            print("demo: the kernel's numbers do not match numpy", file=sys.stderr)
            return 1
        # The load: one client thread per core, each running a longer kernel in timing-only mode.
        heavy = [(session.load_model(f"mlp-x{REPEAT}-nc{m.info.subgraphs[0].core_id}",
                                     {m.info.subgraphs[0].core_id: mlp_program(weights=w, repeat=REPEAT)}),
                  x, out, rowmax) for m, x, out, rowmax in per_core]
        counts = [0] * len(heavy)
        deadline = time.monotonic() + seconds

        def drive(index: int) -> None:
            model, x, out, rowmax = heavy[index]
            while time.monotonic() < deadline:
                model.execute(xT=x, out=out, rowmax=rowmax, timing_only=True)
                counts[index] += 1

        with Device(daemon.address) as device:
            before = device.snapshot()
            threads = [threading.Thread(target=drive, args=(i,)) for i in range(len(heavy))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            after = device.snapshot()
        count = sum(counts)
        busy = utilization(before, after)
        print(f"{count} executions in {seconds:g} s; NeuronCore utilization: "
              + " ".join(f"{u:.1f}%" for u in busy))
        try:
            from neurontools.ls.cli import main as neuron_ls
        except ImportError:
            return 0
        print()
        return neuron_ls(["--address", daemon.address])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="neurontools demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instance-type", default="inf2.48xlarge")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to run the workload")
    args = parser.parse_args(argv)
    return run(args.instance_type, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
