import json

import pytest

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.device import topology as topo
from neurontools.daemon.device.instance_info import ConfigFileError, resolve_identity

# inf2.48xlarge rows of runtime-performance-tips.rst (reference inferentia2.md section 1.3)
INF2_48 = [
    ("0000:80:1e.0", "48-71,144-167", 2), ("0000:90:1e.0", "72-95,168-191", 3),
    ("0000:80:1d.0", "48-71,144-167", 2), ("0000:90:1f.0", "72-95,168-191", 3),
    ("0000:80:1f.0", "48-71,144-167", 2), ("0000:90:1d.0", "72-95,168-191", 3),
    ("0000:20:1e.0", "24-47,120-143", 1), ("0000:20:1f.0", "24-47,120-143", 1),
    ("0000:10:1e.0", "0-23,96-119", 0), ("0000:10:1f.0", "0-23,96-119", 0),
    ("0000:10:1d.0", "0-23,96-119", 0), ("0000:20:1d.0", "24-47,120-143", 1),
]


def test_catalog_sizes_match_the_instance_table():
    expected = {"inf2.xlarge": (1, 4, 16), "inf2.8xlarge": (1, 32, 128), "inf2.24xlarge": (6, 96, 384),
                "inf2.48xlarge": (12, 192, 768), "trn1.2xlarge": (1, 8, 32), "trn1.32xlarge": (16, 128, 512)}
    for name, (chips, vcpus, host_gib) in expected.items():
        machine = topo.lookup(name)
        assert (len(machine.devices), machine.vcpus, machine.host_memory_bytes) == (chips, vcpus, host_gib << 30)
        assert machine.core_count == 2 * chips


def test_inf2_48xlarge_layout_and_ring():
    machine = topo.lookup("inf2.48xlarge")
    assert [(d.bdf, d.cpu_affinity, d.numa_node) for d in machine.devices] == INF2_48
    assert machine.devices[0].connected_to == (11, 1)
    assert machine.devices[11].connected_to == (10, 0)
    assert machine.devices[5].core_ids == (10, 11)
    assert len(machine.links()) == 12 and machine.shape == "ring"


def test_inf2_24xlarge_is_a_chain_without_wrap():
    machine = topo.lookup("inf2.24xlarge")
    assert [d.connected_to for d in machine.devices] == [(1,), (0, 2), (1, 3), (2, 4), (3, 5), (4,)]
    assert machine.devices[2].bdf == "0000:10:1e.0" and machine.devices[2].cpu_affinity == "0-23,48-71"


def test_trn1_32xlarge_torus_matches_the_driver_table():
    machine = topo.lookup("trn1.32xlarge")
    assert machine.devices[0].connected_to == (12, 3, 4, 1)
    assert machine.devices[5].connected_to == (1, 4, 9, 6)
    assert machine.devices[15].connected_to == (11, 14, 3, 12)
    assert len(machine.links()) == 32


def test_proto_carries_identity_strings():
    machine = topo.lookup("inf2.xlarge")
    proto = topo.to_proto(machine, resolve_identity("inf2.xlarge", {}))
    hw = proto.hardware
    assert (hw.neuron_device_type, hw.neuron_device_version, hw.neuroncore_version) == ("inferentia2", "v3", "v2")
    assert (hw.device_arch, hw.core_arch, hw.device_name, hw.platform_name) == ("NDv3", "NCv2", "Inferentia2", "Inf2")
    assert hw.neuron_device_memory_size == 34359738368 and hw.pci_device_id == 0x7264
    assert list(proto.devices[0].hbm_stack_bytes) == [16 << 30, 16 << 30]
    assert proto.devices[0].numa_node == -1 and not proto.links


def test_unknown_instance_type_lists_the_known_ones():
    with pytest.raises(topo.UnknownInstanceType, match="inf2.48xlarge"):
        topo.lookup("inf3.huge")


def test_identity_defaults_are_deterministic_and_overridable():
    a = resolve_identity("inf2.xlarge", {})
    assert a == resolve_identity("inf2.xlarge", {})
    assert a.instance_id.startswith("i-0") and a.instance_id != resolve_identity("inf2.48xlarge", {}).instance_id
    b = resolve_identity("inf2.xlarge", {"instance_id": "i-0abc", "region": "eu-west-1"})
    assert (b.instance_id, b.region, b.instance_type) == ("i-0abc", "eu-west-1", "inf2.xlarge")
    with pytest.raises(ConfigFileError, match="instance_id"):
        resolve_identity("inf2.xlarge", {"instance_id": "not an id"})


def _write(tmp_path, data):
    path = tmp_path / "machine.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_custom_topology_file(tmp_path):
    path = _write(tmp_path, {"instance_type": "lab.box", "vcpus": 16, "host_memory_gib": 64, "devices": [
        {"bdf": "0000:10:1e.0", "cpu_affinity": "0-7", "numa_node": 0, "connected_to": [1]},
        {"bdf": "0000:10:1f.0", "cpu_affinity": "8-15", "numa_node": 1, "connected_to": [0]}]})
    machine = topo.load_topology_file(path)
    assert machine.instance_type == "lab.box" and machine.core_count == 4 and machine.links() == [(0, 1)]
    assert topo.to_proto(machine, pb.InstanceInfo()).shape == "custom"


@pytest.mark.parametrize("data, message", [
    ("{not json", "not valid JSON"),
    ({"instance_type": "x", "vcpus": 4, "host_memory_gib": 8, "devices": []}, "devices"),
    ({"instance_type": "x", "vcpus": 4, "host_memory_gib": 8,
      "devices": [{"bdf": "10:1e.0", "cpu_affinity": "0-3"}]}, "devices.0.bdf"),
    ({"instance_type": "x", "vcpus": 4, "host_memory_gib": 8,
      "devices": [{"bdf": "0000:10:1e.0", "cpu_affinity": "0-9"}]}, "names cpu 4"),
    ({"instance_type": "x", "vcpus": 4, "host_memory_gib": 8,
      "devices": [{"bdf": "0000:10:1e.0", "cpu_affinity": "0-3", "connected_to": [1]},
                  {"bdf": "0000:10:1f.0", "cpu_affinity": "0-3"}]}, "does not link back"),
    ({"instance_type": "x", "vcpus": 4, "host_memory_gib": 8, "colour": "red",
      "devices": [{"bdf": "0000:10:1e.0", "cpu_affinity": "0-3"}]}, "colour"),
])
def test_bad_topology_files_name_the_file_and_the_problem(tmp_path, data, message):
    path = _write(tmp_path, data)
    with pytest.raises(topo.TopologyFileError) as info:
        topo.load_topology_file(path)
    assert str(path) in str(info.value) and message in str(info.value)
