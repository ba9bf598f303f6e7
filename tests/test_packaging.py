"""Packaging: the metadata in its current standard form, and a first ./run that prints only what a
user needs (no setuptools deprecation screens)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _backend(hook: str, tmp_path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """A PEP 517 hook of setuptools run on this checkout, as pip runs it."""
    code = ("import sys; from setuptools import build_meta as b; "
            f"print(b.{hook}(sys.argv[1], {{'editable_mode': 'compat'}} if 'editable' in '{hook}' else None))")
    return subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_the_license_is_an_spdx_expression_without_a_deprecation_notice(tmp_path):
    result = _backend("prepare_metadata_for_build_wheel", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "deprecated" not in result.stderr.lower(), result.stderr
    metadata = (tmp_path / result.stdout.strip().splitlines()[-1] / "METADATA").read_text()  # the hook returns the name
    assert "License-Expression: Apache-2.0" in metadata.splitlines()  # PEP 639


def test_the_install_in_run_prints_no_notice(tmp_path):
    """The editable build with the settings ./run gives pip: its PYTHONWARNINGS and editable mode."""
    run = (ROOT / "run").read_text()
    assert "--config-settings editable_mode=compat" in run
    match = re.search(r'PYTHONWARNINGS="([^"]*)"', run)
    assert match, "./run does not set PYTHONWARNINGS for its pip install"
    result = _backend("build_editable", tmp_path, {"PYTHONWARNINGS": match.group(1)})
    assert result.returncode == 0, result.stderr
    assert "!!" not in result.stderr and "Warning" not in result.stderr, result.stderr
