"""`retento bench` needs the `bench` extra; without it the command says what to install and exits non-zero."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import benchmarks

ROOT = Path(__file__).resolve().parents[2]


def test_bench_without_the_extra_names_what_to_install_and_fails():
    hide = "import sys; sys.modules.update(dict.fromkeys(%r)); " % (benchmarks.EXTRA,)
    args = ["retento", "bench", "segments", "--customers", "100"]
    run = subprocess.run([sys.executable, "-c", hide + f"sys.argv = {args!r}; from retento.cli import main; main()"],
                         capture_output=True, text=True, timeout=120, env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert "needs the bench extra" in run.stderr and "pip install -e '.[bench]'" in run.stderr
    assert "missing: aiosmtpd, duckdb" in run.stderr


def test_the_extra_modules_are_what_the_bench_extra_installs():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["bench"]
    assert sorted(re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in extra) == sorted(benchmarks.EXTRA)
