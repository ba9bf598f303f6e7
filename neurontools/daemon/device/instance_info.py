"""EC2 instance identity of the simulated machine (what IMDS would answer on a real host).

Defaults are deterministic per instance type, so outputs are reproducible; a daemon config file
(`--config`) or flags override any field.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.device.topology import describe_problems


class InstanceIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instance_name: str = ""
    instance_id: str = Field("", pattern=r"^(i-[0-9a-zA-Z]{1,32})?$")
    availability_zone: str = "us-east-2a"
    availability_zone_id: str = "use2-az1"
    region: str = "us-east-2"
    ami_id: str = ""
    subnet_id: str = ""


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def default_identity(instance_type: str) -> InstanceIdentity:
    return InstanceIdentity(
        instance_id="i-0" + _hex(f"instance/{instance_type}", 16),
        ami_id="ami-0" + _hex(f"ami/{instance_type}", 16),
        subnet_id="subnet-0" + _hex(f"subnet/{instance_type}", 16),
    )


class DaemonConfig(BaseModel):
    """The daemon's config file (JSON): `{"instance_type": ..., "instance_info": {...}}`."""

    model_config = ConfigDict(extra="forbid")

    instance_type: str | None = None
    topology_file: str | None = None
    instance_info: dict[str, str] = Field(default_factory=dict)


class ConfigFileError(ValueError):
    pass


def load_config(path: str | Path) -> DaemonConfig:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        return DaemonConfig.model_validate(raw)
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read config file: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigFileError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except ValidationError as exc:
        raise ConfigFileError(f"{path}: invalid config: " + describe_problems(exc)) from None


def resolve_identity(instance_type: str, overrides: dict[str, str]) -> pb.InstanceInfo:
    """Defaults for the type with `overrides` (field name -> value) applied and validated."""
    data = default_identity(instance_type).model_dump()
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        identity = InstanceIdentity.model_validate(data)
    except ValidationError as exc:
        raise ConfigFileError("invalid instance info: " + describe_problems(exc)) from None
    return pb.InstanceInfo(instance_type=instance_type, **identity.model_dump())
