"""A loaded model's profile from neurond (GetProfile), with where it came from."""

from __future__ import annotations

import json
import time

from neurontools._proto import neurond_pb2 as pb
from neurontools.client import Device


def fetch_profile(device: Device, model_id: int, core_id: int | None = None,
                  session_id: int | None = None) -> tuple[pb.Profile, dict]:
    """(the daemon's answer, the profile with its `source`); raises the client's NeuronError."""
    answer = device.profile(model_id, core_id, session_id)
    profile = json.loads(answer.profile_json)
    profile["source"] = {"model_id": answer.model_id, "model_name": answer.model_name, "core_id": answer.core_id,
                         "session_id": answer.session_id, "instance_type": answer.instance_type,
                         "address": device.address, "captured_unix": time.time()}
    return answer, profile
