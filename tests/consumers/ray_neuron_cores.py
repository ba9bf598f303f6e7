"""Unmodified Ray on the software node: run under `neuron-node run --prefix P` so that Ray's
hard-coded /opt/aws/neuron/bin/neuron-ls is our launcher. Prints one JSON line with what Ray
detected and what each task's neurontools Session got."""

import json
import os
import sys
import tempfile

import ray


@ray.remote(num_cpus=0, resources={"neuron_cores": 2})
def two_cores():
    from neurontools.client import Session
    with Session() as session:  # honours NEURON_RT_VISIBLE_CORES, which Ray sets
        return {"ray": ray.get_runtime_context().get_accelerator_ids()["neuron_cores"],
                "env": os.environ.get("NEURON_RT_VISIBLE_CORES"), "session": session.core_ids}


@ray.remote(num_cpus=0, resources={"neuron_cores": 1})
def one_core():
    from neurontools.client import Session
    with Session() as session:
        return {"ray": ray.get_runtime_context().get_accelerator_ids()["neuron_cores"],
                "env": os.environ.get("NEURON_RT_VISIBLE_CORES"), "session": session.core_ids}


def main() -> int:
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024,
             _temp_dir=tempfile.mkdtemp(prefix="r", dir="/tmp"), logging_level="ERROR")
    try:
        detected = ray.cluster_resources().get("neuron_cores", 0)
        tasks = ray.get([two_cores.remote(), one_core.remote()], timeout=120)
    finally:
        ray.shutdown()
    print(json.dumps({"neuron_cores": detected, "tasks": tasks}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
