"""PrometheusExporter over HTTP(S): the bytes a scraper gets, TLS, and what a scrape costs."""

from __future__ import annotations

import copy
import gzip
import json
import socket
import ssl
import statistics
import subprocess
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics import exposition as openmetrics

from neurontools.monitor.prometheus import (
    PrometheusExporter,
    PrometheusMapping,
    _Collected,
    metrics_registry,
    render_exposition,
    without_eof,
)
from neurontools.monitor.report import Report

CAPTURE = json.loads((Path(__file__).parent / "data" / "captures" / "inf1-xlarge-one-app-2023.json").read_text())
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")  # what Prometheus 2.x sends
# Values that belong to the moment of the scrape or to the process.
VOLATILE = ("neuron_monitor_report_age_seconds", "neuron_monitor_scrape_duration_seconds", "process_", "python_gc_")


def rich_report(tags: tuple[str, ...] = ("15439", 'odd "tag" \\ with\nnewline')) -> Report:
    """Every family at least once, label values that need escaping, an inf2-like hardware entry."""
    data = copy.deepcopy(CAPTURE)
    runtime = data["neuron_runtime_data"][0]
    data["neuron_runtime_data"] = [dict(copy.deepcopy(runtime), neuron_runtime_tag=tag) for tag in tags]
    data["instance_info"]["instance_name"] = 'web "front"'
    data["neuron_hardware_info"].update(neuron_device_memory_size=34359738368, neuroncore_per_device_count=2,
                                        neuron_device_count=2)
    data["system_data"]["neuron_hw_counters"]["neuron_devices"][0]["mem_ecc_corrected"] = 3
    return Report.model_validate(data)


def fed(report: Report, *, created_series: bool = True) -> PrometheusMapping:
    mapping = PrometheusMapping(created_series=created_series)
    mapping.update(report)
    mapping.update(report)
    return mapping


@pytest.mark.parametrize("created_series", [True, False])
@pytest.mark.parametrize("openmetrics_format", [False, True])
def test_our_rendering_is_prometheus_clients_byte_for_byte(created_series, openmetrics_format):
    snapshot = fed(rich_report(), created_series=created_series)._snapshot
    encoder = openmetrics.generate_latest if openmetrics_format else generate_latest

    ours, _ = render_exposition(snapshot.samples, openmetrics=openmetrics_format, created_series=created_series)

    assert ours == without_eof(encoder(_Collected(snapshot.families)))


def test_label_texts_kept_from_the_last_report_give_the_same_bytes():
    first = fed(rich_report())._snapshot
    _, kept = render_exposition(first.samples, openmetrics=True, created_series=True)
    later = fed(rich_report(("15439", "another")))._snapshot

    again, _ = render_exposition(later.samples, openmetrics=True, created_series=True, previous=kept)

    assert again == render_exposition(later.samples, openmetrics=True, created_series=True)[0]


def get(url: str, *, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None,
        method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def stable_lines(exposition: bytes) -> list[str]:
    """The lines of an exposition, without the families whose values are of the moment."""
    lines, skipping = [], False
    for line in exposition.decode().splitlines():
        if line.startswith("# HELP "):
            skipping = line.split()[2].startswith(VOLATILE)
        if not skipping:
            lines.append(line)
    return lines


@pytest.fixture
def exporter():
    with PrometheusExporter(0, address="127.0.0.1") as running:
        running.update(rich_report())
        yield running


def test_plain_scrape_is_what_prometheus_client_writes_for_the_registry(exporter):
    status, headers, body = get(f"http://127.0.0.1:{exporter.port}/metrics")

    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert stable_lines(body) == stable_lines(generate_latest(metrics_registry(exporter.mapping)))


def test_prometheus_scrape_is_gzipped_openmetrics_ending_once_with_eof(exporter):
    status, headers, body = get(f"http://127.0.0.1:{exporter.port}/",
                                headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})

    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body)
    assert text.endswith(b"\n# EOF\n") and text.count(b"# EOF") == 1
    expected = openmetrics.generate_latest(metrics_registry(exporter.mapping))
    assert stable_lines(text) == stable_lines(expected)


def test_gzip_scrape_is_one_member_that_any_decoder_reads_whole(exporter):
    # The body is joined from separately compressed parts; a client that stops after the first
    # gzip member (as some HTTP clients do) must still get everything: exactly one member.
    url = f"http://127.0.0.1:{exporter.port}/metrics"
    for accept in (PROMETHEUS_ACCEPT, "text/plain"):
        _, headers, body = get(url, headers={"Accept": accept, "Accept-Encoding": "gzip"})
        _, _, plain = get(url, headers={"Accept": accept})
        decoder = zlib.decompressobj(wbits=31)  # gzip framing: header, deflate stream, CRC and size checked
        text = decoder.decompress(body)

        assert headers["Content-Encoding"] == "gzip"
        assert decoder.eof and decoder.unused_data == b""
        assert stable_lines(text) == stable_lines(plain)


def test_gzip_scrapes_follow_a_new_report(exporter):
    # The compressed report part is cached per report: a new report must show in the next scrape.
    url = f"http://127.0.0.1:{exporter.port}/metrics"
    gzip_headers = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
    before = gzip.decompress(get(url, headers=gzip_headers)[2])
    exporter.update(rich_report(tags=("another-runtime",)))
    after = gzip.decompress(get(url, headers=gzip_headers)[2])

    assert b'runtime_tag="15439"' in before and b'runtime_tag="another-runtime"' not in before
    assert b'runtime_tag="another-runtime"' in after and b'runtime_tag="15439"' not in after


def test_the_report_is_compressed_once_per_report_not_per_scrape(monkeypatch):
    from neurontools.monitor import prometheus

    compressed: list[int] = []  # the sizes of what was compressed, in order
    original = prometheus.deflate_blocks
    monkeypatch.setattr(prometheus, "deflate_blocks", lambda data: compressed.append(len(data)) or original(data))
    mapping = fed(rich_report())
    app = prometheus.MetricsApp(mapping)
    environ = {"REQUEST_METHOD": "GET", "HTTP_ACCEPT": PROMETHEUS_ACCEPT, "HTTP_ACCEPT_ENCODING": "gzip"}
    for _ in range(3):
        app(environ, lambda *_: None)
    report_bytes = max(compressed)
    first_report = list(compressed)
    mapping.update(rich_report(tags=("another-runtime",)))
    app(environ, lambda *_: None)

    # Three scrapes: the report's part once, the small client and self-metric parts every time.
    assert len(first_report) == 1 + 3 * 2 and first_report.count(report_bytes) == 1
    assert sorted(first_report)[-2] < report_bytes / 5
    # A new report is compressed again, on the scrape after it.
    assert len(compressed) == len(first_report) + 3 and max(compressed[-3:]) > report_bytes / 5


def test_name_parameter_restricts_the_scrape(exporter):
    _, _, body = get(f"http://127.0.0.1:{exporter.port}/metrics?name[]=neuroncore_utilization_ratio")

    names = {line.split()[2] for line in body.decode().splitlines() if line.startswith("# TYPE")}
    assert names == {"neuroncore_utilization_ratio"}


def test_only_get_and_options_are_served(exporter):
    assert get(f"http://127.0.0.1:{exporter.port}/metrics", method="POST")[0] == 405
    status, headers, body = get(f"http://127.0.0.1:{exporter.port}/metrics", method="OPTIONS")
    assert (status, headers["Allow"], body) == (200, "OPTIONS,GET", b"")


def test_lean_exporter_has_no_client_or_created_series():
    with PrometheusExporter(0, address="127.0.0.1", lean=True) as lean:
        lean.update(rich_report())
        _, _, body = get(f"http://127.0.0.1:{lean.port}/metrics", headers={"Accept": PROMETHEUS_ACCEPT})

    text = body.decode()
    assert "_created" not in text and "python_" not in text and "process_" not in text
    assert "neuroncore_utilization_ratio{" in text


def test_a_taken_port_is_an_os_error(exporter):
    with pytest.raises(OSError):
        PrometheusExporter(exporter.port, address="127.0.0.1")


def test_https_needs_both_files():
    with pytest.raises(ValueError, match="both"):
        PrometheusExporter(0, address="127.0.0.1", certfile="cert.pem")


def make_certificate(directory: Path, common_name: str) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={common_name}",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key


def served_certificate(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)


def pem_der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def test_https_serves_with_the_given_certificate_and_reloads_it(tmp_path):
    cert, key = make_certificate(tmp_path, "first")
    with PrometheusExporter(0, address="127.0.0.1", certfile=str(cert), keyfile=str(key)) as secure:
        secure.update(rich_report())
        context = ssl.create_default_context(cafile=str(cert))
        status, _, body = get(f"https://127.0.0.1:{secure.port}/metrics", context=context)
        assert status == 200 and b"neuroncore_utilization_ratio{" in body
        assert secure.https and not secure.reload_tls_if_changed()

        make_certificate(tmp_path, "second")
        assert secure.reload_tls_if_changed()
        assert served_certificate(secure.port) == pem_der(cert)
        assert not secure.reload_tls_if_changed()


def busy_inf2_48xlarge() -> Report:
    """50 applications, each listing all 24 cores as a real report does: about 3,600 series."""
    data = copy.deepcopy(CAPTURE)
    runtime = data["neuron_runtime_data"][0]
    core_memory = runtime["report"]["memory_used"]["neuron_runtime_used_bytes"]["usage_breakdown"][
        "neuroncore_memory_usage"]["0"]
    data["neuron_runtime_data"] = []
    for index in range(50):
        app = copy.deepcopy(runtime)
        app["neuron_runtime_tag"] = f"app{index}"
        app["report"]["neuroncore_counters"]["neuroncores_in_use"] = {
            str(core): {"neuroncore_utilization": 40.0 + core, "flops": 10**12} for core in range(24)}
        app["report"]["memory_used"]["neuron_runtime_used_bytes"]["usage_breakdown"]["neuroncore_memory_usage"] = {
            str(index % 24): core_memory}
        data["neuron_runtime_data"].append(app)
    return Report.model_validate(data)


def test_a_report_and_the_scrape_after_it_cost_little_cpu_on_a_busy_inf2_48xlarge():
    # The worst case: every scrape is the first after a new report, so nothing is formatted yet.
    # CPU time of this process (exporter and client), not wall time: a loaded CI machine stretches
    # the latter. The wall-clock p99 budget (50 ms) is measured in bench/.
    report = busy_inf2_48xlarge()
    with PrometheusExporter(0, address="127.0.0.1") as busy:
        costs = []
        for _ in range(15):
            started = time.process_time()
            busy.update(report)
            status, _, _ = get(f"http://127.0.0.1:{busy.port}/metrics",
                               headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})
            costs.append(time.process_time() - started)
            assert status == 200

    assert statistics.median(costs) < 0.05, [round(cost * 1000, 1) for cost in costs]
