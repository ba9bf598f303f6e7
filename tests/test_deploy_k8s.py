"""deploy/k8s/: the manifests are valid Kubernetes (strict schema check of kubernetes-validate, offline),
their commands parse with our own CLIs, and the consumer pod mounts exactly what the DaemonSet makes
at the paths real software reads."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from neurontools.daemon.server.cli import build_parser as neurond_parser
from neurontools.ls.options import parse_options
from neurontools.node.cli import build_parser as node_parser
from neurontools.node.namespace import SYSFS_GRAFTS, TOOLS_TARGET

K8S = Path(__file__).parent.parent / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def all_documents() -> list[dict]:
    return [d for path in sorted(K8S.glob("*.yaml")) for d in documents(path.name)]


@pytest.mark.parametrize("document", all_documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_valid_kubernetes(document):
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)  # raises on any error


def test_invalid_manifests_are_caught():  # the check above can fail
    pod = documents("neuron-consumer-pod.yaml")[0]
    pod["spec"]["containers"][0]["volumeMount"] = pod["spec"]["containers"][0].pop("volumeMounts")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def _daemonset() -> dict:
    return next(d for d in documents("neurond-daemonset.yaml") if d["kind"] == "DaemonSet")


def test_commands_parse_with_our_clis_and_the_pod_mounts_what_the_daemonset_makes():
    spec = _daemonset()["spec"]["template"]["spec"]
    install = spec["initContainers"][0]["command"]
    assert install[0] == "neuron-node"
    install_args = node_parser().parse_args(install[1:])
    neurond = spec["containers"][0]["command"]
    assert neurond[0] == "neurond"
    daemon_args = neurond_parser().parse_args(neurond[1:])
    probe = spec["containers"][0]["readinessProbe"]["exec"]["command"]
    assert parse_options(probe[1:]).address == daemon_args.address
    assert install_args.address == daemon_args.address

    pod = documents("neuron-consumer-pod.yaml")[0]["spec"]
    host_path = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
    mounts = {m["mountPath"]: host_path[m["name"]] for m in pod["containers"][0]["volumeMounts"]}
    # the tools where Ray looks, from where install put them
    assert mounts[TOOLS_TARGET] == f"{install_args.prefix}/bin"
    # the driver's tree: mounted over the existing parents of the real paths
    sysfs_root = daemon_args.sysfs_root
    for inside, target in SYSFS_GRAFTS:
        if target.startswith("/sys/class"):
            continue  # only the ECS agent reads /sys/class/neuron_device; covering /sys/class hides too much
        parent_inside, parent_target = inside.rsplit("/", 1)[0], target.rsplit("/", 1)[0]
        assert mounts[parent_target] == f"{sysfs_root}/{parent_inside}", target
    # and the socket the address names
    socket_dir = daemon_args.address.removeprefix("unix://").rsplit("/", 1)[0]
    assert mounts[socket_dir] == socket_dir
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["NEURON_DAEMON_ADDRESS"] == daemon_args.address
