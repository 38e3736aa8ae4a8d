"""`make test` on a machine without the Debian packages some tests need: it installs them as root,
or prints the one command that does and stops before testing; `SYSTEM_PACKAGES=skip` runs without
them. The step is run here against an empty root and a PATH of stand-ins, so nothing is installed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / ".ci" / "system-packages"
PACKAGES = (
    "kubernetes-client fonts-noto-color-emoji unicode-data npm prometheus chromium chromium-driver qemu-user"
)


def stand_ins(folder: Path, uid: int) -> Path:
    """A PATH holding only `id` (answering `uid`) and an apt-get that records how it was called."""
    folder.mkdir()
    (folder / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (folder / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {folder}/apt-get.calls\n')
    for name in ("id", "apt-get"):
        (folder / name).chmod(0o755)
    return folder


def run_step(
    tmp_path: Path, uid: int, mode: str | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    path = stand_ins(tmp_path / "bin", uid)
    env = {"PATH": str(path), "SYSTEM_ROOT": str(tmp_path / "root")}
    if mode is not None:
        env["SYSTEM_PACKAGES"] = mode
    done = subprocess.run(["/bin/bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    return done, path / "apt-get.calls"


def test_without_root_it_prints_the_one_command_and_stops(tmp_path: Path) -> None:
    done, calls = run_step(tmp_path, uid=1000)
    assert done.returncode == 1 and not calls.exists()
    commands = [line.strip() for line in done.stderr.splitlines() if "apt-get" in line]
    assert commands == [f"sudo sh -c 'apt-get update && apt-get install -y {PACKAGES}'"]
    assert "make test SYSTEM_PACKAGES=skip" in done.stderr


def test_as_root_it_installs_what_is_missing(tmp_path: Path) -> None:
    done, calls = run_step(tmp_path, uid=0)
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == ["update -qq", f"install -y -qq {PACKAGES}"]


def test_skip_carries_on_and_says_so(tmp_path: Path) -> None:
    done, calls = run_step(tmp_path, uid=1000, mode="skip")
    assert done.returncode == 0 and not calls.exists()
    assert f"SYSTEM_PACKAGES=skip: {PACKAGES} missing" in done.stderr
    (tmp_path / "again").mkdir()
    wrong, _ = run_step(tmp_path / "again", uid=1000, mode="maybe")
    assert wrong.returncode == 2 and "install or skip" in wrong.stderr


def test_make_test_runs_the_step_before_any_test_and_ci_uses_make_test() -> None:
    plan = subprocess.run(
        ["make", "-n", "test", "SYSTEM_PACKAGES=skip"], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    lines = plan.stdout.splitlines()
    step = next(i for i, line in enumerate(lines) if ".ci/system-packages" in line)
    tests = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert step < tests and "SYSTEM_PACKAGES=skip" in lines[step]
    assert "ARTCTL_SYSTEM_PACKAGES=skip" in lines[tests] or "ARTCTL_SYSTEM_PACKAGES=skip" in lines[tests - 1]
    assert "apt-get" not in (REPO / ".ci" / "run").read_text()  # CI runs what a newcomer runs


def test_a_missing_package_is_skipped_only_when_asked_and_counted_at_the_end(tmp_path: Path) -> None:
    (tmp_path / "test_needs.py").write_text(
        "from tests.helpers import require_system\n\n"
        "def test_needs_a_package():\n"
        "    require_system(False, 'frobnicator', 'frobnicator')\n"
    )
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_terminal_summary  # noqa: F401\n"
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(tmp_path / "test_needs.py"),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    failed = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert failed.returncode == 1 and "SYSTEM_PACKAGES=skip" in failed.stdout
    env["ARTCTL_SYSTEM_PACKAGES"] = "skip"
    skipped = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout
    assert "SYSTEM_PACKAGES=skip: 1 tests skipped for missing Debian packages" in skipped.stdout


def test_the_signal_test_passes_when_started_with_sigint_ignored() -> None:
    # A test run started as a shell background job (`make test &`) inherits SIGINT ignored.
    name = "test_a_signal_during_setup_stops_before_the_first_step_and_a_second_one_at_once"
    node = f"tests/test_artist.py::{name}"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert done.returncode == 0, done.stdout[-2000:]
