"""neuron-monitor's configuration file: the real format, period precedence, and every refusal."""

from __future__ import annotations

import json

import pytest

from neurontools.monitor.config import (DEFAULT_PERIOD_SECONDS, RUNTIME_GROUPS, SYSTEM_GROUPS, ConfigError,
                                        default_config, load_config, parse_config, parse_period)

# The reference's verbatim example (§3.2): all groups, 1 s, neuron_hw_counters every 2 s.
DOC_EXAMPLE = """{
  "period": "1s",
  "neuron_runtimes": [
    {
      "tag_filter": ".*",
      "metrics": [
        {"type": "neuroncore_counters"}, {"type": "memory_used"},
        {"type": "neuron_runtime_vcpu_usage"}, {"type": "execution_stats"}
      ]
    }
  ],
  "system_metrics": [
    {"type": "vcpu_usage"}, {"type": "memory_info"},
    {
       "period": "2s",
       "type": "neuron_hw_counters"
    }
  ]
}"""


def test_the_documented_example_parses():
    config = parse_config(DOC_EXAMPLE, "monitor.conf")
    [selector] = config.runtimes
    assert selector.tag_filter is not None and selector.tag_filter.pattern == ".*"
    assert dict(selector.groups) == dict.fromkeys(RUNTIME_GROUPS, 1.0)
    assert dict(config.system) == {"vcpu_usage": 1.0, "memory_info": 1.0, "neuron_hw_counters": 2.0}
    assert config.period == 1.0


def test_the_most_specific_period_wins():
    config = parse_config(json.dumps({
        "period": "10s",
        "neuron_runtimes": [{"period": "3s", "metrics": [{"type": "memory_used"},
                                                        {"type": "execution_stats", "period": "500ms"}]},
                            {"tag_filter": "x", "metrics": [{"type": "memory_used"}]}],
        "system_metrics": [{"type": "memory_info"}, {"type": "vcpu_usage", "period": "1m"}]}))
    assert dict(config.runtimes[0].groups) == {"memory_used": 3.0, "execution_stats": 0.5}
    assert dict(config.runtimes[1].groups) == {"memory_used": 10.0}
    assert dict(config.system) == {"memory_info": 10.0, "vcpu_usage": 60.0}


def test_without_any_period_groups_run_every_5_seconds():
    config = parse_config('{"system_metrics": [{"type": "memory_info"}]}')
    assert dict(config.system) == {"memory_info": DEFAULT_PERIOD_SECONDS} and config.period == 5.0


def test_default_config_collects_every_group_for_every_application_every_5_seconds():
    config = default_config()
    [selector] = config.runtimes
    assert selector.matches("anything") and selector.matches("")
    assert tuple(selector.groups) == RUNTIME_GROUPS and set(selector.groups.values()) == {5.0}
    assert tuple(config.system) == SYSTEM_GROUPS and set(config.system.values()) == {5.0}


def test_an_empty_object_is_a_valid_config():
    config = parse_config("{}")
    assert config.runtimes == () and dict(config.system) == {}


@pytest.mark.parametrize("text, seconds", [
    ("1s", 1.0), ("2s", 2.0), ("500ms", 0.5), ("1m", 60.0), ("1m30s", 90.0), ("1h", 3600.0),
    ("10ms", 0.01), ("250000us", 0.25), ("250000µs", 0.25), ("1000000000ns", 1.0),
])
def test_periods_are_go_durations_in_whole_numbers(text, seconds):
    assert parse_period(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, problem", [
    ("1.0s", 'write whole numbers ("1s"); the real neuron-monitor silently ignores fractional periods'),
    ("1.5s", '("1500ms")'),
    ("0.5m", '("30s")'),
    ("5", "is not a duration: use a number and a unit"),
    ("5 s", "is not a duration"),
    ("-1s", "is not a duration"),
    ("1d", "is not a duration"),
    ("", "is not a duration"),
    ("0s", "is too short: the shortest period is 10ms"),
    ("9ms", "is too short"),
    (5, 'must be a string such as "1s" or "500ms", not 5'),
])
def test_bad_periods_are_refused_with_the_fix(text, problem):
    with pytest.raises(ValueError) as info:
        parse_period(text)
    assert problem in str(info.value)


@pytest.mark.parametrize("document, field, problem", [
    # legacy and unknown group names
    ({"neuron_runtimes": [{"metrics": [{"type": "inference_stats"}]}]}, "neuron_runtimes[0].metrics[0].type",
     'legacy metric group "inference_stats": it was renamed "execution_stats"'),
    ({"neuron_runtimes": [{"metrics": [{"type": "memory_used"}, {"type": "nc_counters"}]}]},
     "neuron_runtimes[0].metrics[1].type", 'Neuron 1.x name of "neuroncore_counters"'),
    ({"neuron_runtimes": [{"metrics": [{"type": "runtime_cpu_usage"}]}]}, "neuron_runtimes[0].metrics[0].type",
     '"neuron_runtime_vcpu_usage"'),
    ({"system_metrics": [{"type": "hw_counters"}]}, "system_metrics[0].type", '"neuron_hw_counters"'),
    ({"system_metrics": [{"type": "gpu_usage"}]}, "system_metrics[0].type",
     'unknown metric group "gpu_usage"; expected one of: vcpu_usage, memory_info, neuron_hw_counters'),
    ({"system_metrics": [{"type": "memory_used"}]}, "system_metrics[0].type",
     '"memory_used" is a runtime metric group: put it in neuron_runtimes[].metrics'),
    ({"neuron_runtimes": [{"metrics": [{"type": "vcpu_usage"}]}]}, "neuron_runtimes[0].metrics[0].type",
     "is a system metric group: put it in system_metrics"),
    ({"system_metrics": [{"type": 3}]}, "system_metrics[0].type", "unknown metric group 3"),
    ({"system_metrics": [{"period": "1s"}]}, "system_metrics[0].type", "missing; expected one of"),
    ({"system_metrics": [{"type": "vcpu_usage"}, {"type": "vcpu_usage"}]}, "system_metrics[1].type",
     '"vcpu_usage" is configured twice in system_metrics'),
    # periods at each level
    ({"period": "1.0s"}, "period", "fractional"),
    ({"neuron_runtimes": [{"period": 1}]}, "neuron_runtimes[0].period", "must be a string"),
    ({"system_metrics": [{"type": "vcpu_usage", "period": "fast"}]}, "system_metrics[0].period",
     '"fast" is not a duration'),
    # structure
    ({"neuron_runtimes": [{"tag_filter": "(", "metrics": []}]}, "neuron_runtimes[0].tag_filter",
     'invalid regular expression "("'),
    ({"neuron_runtimes": [{"tag_filter": 7}]}, "neuron_runtimes[0].tag_filter", "must be a regular expression"),
    ({"neuron_runtimes": {"metrics": []}}, "neuron_runtimes", "must be a JSON array"),
    ({"neuron_runtimes": [{"metrics": "memory_used"}]}, "neuron_runtimes[0].metrics", "must be a JSON array"),
    ({"neuron_runtimes": ["memory_used"]}, "neuron_runtimes[0]", "must be a JSON object"),
    ({"peroid": "1s"}, "peroid", "unknown field; expected one of: period, neuron_runtimes, system_metrics"),
    ({"system_metrics": [{"type": "vcpu_usage", "interval": "1s"}]}, "system_metrics[0].interval",
     "unknown field; expected one of: type, period"),
    ({"neuron_runtimes": [{"address": "unix:/run/neuron.sock"}]}, "neuron_runtimes[0].address",
     "Neuron Runtime 1.x neuron-rtd"),
    ({"k8s_info": {}}, "k8s_info", "not supported"),
])
def test_bad_configs_name_the_file_the_field_and_the_problem(document, field, problem):
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(document), "/etc/monitor.conf")
    assert info.value.field_path == field
    assert problem in info.value.problem
    assert str(info.value).startswith(f"/etc/monitor.conf: {field}: ")


def test_malformed_json_names_the_line_and_column():
    with pytest.raises(ConfigError) as info:
        parse_config('{\n  "period": "1s"\n  "system_metrics": []\n}', "monitor.conf")
    assert str(info.value) == "monitor.conf: line 3 column 3: not valid JSON: Expecting ',' delimiter"


def test_a_non_object_document_is_refused():
    with pytest.raises(ConfigError, match=r"^c.json: \(root\): must be a JSON object"):
        parse_config("[]", "c.json")


def test_load_config_reads_the_file_and_reports_a_missing_one(tmp_path):
    path = tmp_path / "monitor.conf"
    path.write_text(DOC_EXAMPLE)
    assert dict(load_config(path).system)["neuron_hw_counters"] == 2.0
    with pytest.raises(ConfigError, match=r"nope\.conf: cannot read the configuration file: .*No such file"):
        load_config(tmp_path / "nope.conf")
