"""Which execution a profile describes, and the Profile message for it (GetProfile; docs/profile.md).

The daemon keeps no trace per execution: a program's schedule depends only on its shapes and, for a
rank, on the collective times its model was planned with, so every execution of a model on a core
runs the same schedule. The profile of the first execution is therefore the program's schedule
replayed with a recorder (isa/profile_capture.py), taken when asked for, once the model has executed:
memory is spent only on the profiles someone asks for.
"""

from __future__ import annotations

import json

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.errors import FailedPrecondition, NotFound
from neurontools.daemon.runtime.sessions import LoadedSubgraph, RuntimeState


def profiled_subgraph(state: RuntimeState, request: pb.GetProfileRequest) -> tuple[pb.Profile, LoadedSubgraph]:
    """The Profile's identity fields and the subgraph to replay; the errors name what to do."""
    with state.lock:
        if request.HasField("session_id") and request.session_id not in state.sessions:
            raise NotFound(f"no session {request.session_id} is open (its program exited or closed it, and its "
                           "models were unloaded); capture while the program runs, after its model's first execution")
        model = state.models.get(request.model_id)
        if model is None:
            raise NotFound(f"no model {request.model_id} is loaded (it was unloaded, or its session ended); "
                           "list the loaded models with 'neuron-ls --show-all-procs' or a snapshot")
        if request.HasField("core_id"):
            subgraph = model.subgraph_on(request.core_id)
            if subgraph is None:
                cores = ", ".join(str(sg.core_id) for sg in model.subgraphs)
                raise NotFound(f"model {model.model_id} ({model.name}) has no subgraph on NeuronCore "
                               f"{request.core_id}; it runs on NeuronCore {cores}")
        else:
            subgraph = model.subgraphs[0]
        if request.HasField("session_id") and model.session_id != request.session_id:
            raise NotFound(f"model {model.model_id} ({model.name}) belongs to session {model.session_id}, "
                           f"not session {request.session_id}; give its own session, or none")
        if model.executions == 0:
            raise FailedPrecondition(f"model {model.model_id} ({model.name}) has not executed yet: a profile "
                                     "describes its first execution; execute it once, then ask again")
        identity = pb.Profile(model_id=model.model_id, model_name=model.name, core_id=subgraph.core_id,
                              session_id=model.session_id, instance_type=state.machine.instance_type)
    return identity, subgraph


def profile_json(subgraph: LoadedSubgraph) -> bytes:
    """The replay itself: CPU-bound (a large program takes a while), so the server runs it off its loop."""
    return json.dumps(subgraph.program.profile(), separators=(",", ":")).encode()
