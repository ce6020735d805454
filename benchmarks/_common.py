"""What every benchmark records beside its numbers: the machine, the versions, the date."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import medverify

RESULTS = Path(__file__).parent / "results"


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (or the platform's best guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """A description of where the benchmark ran."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "medverify": medverify.__version__,
    }


def write_result(name: str, result: dict[str, Any], out: str | Path | None = None) -> Path:
    """Write ``{name, date, machine, ...result}`` as JSON and return the path."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        **result,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def start_fake_server(latency: float, responder: str = "echo") -> tuple[subprocess.Popen, str]:
    """Start the fake server in its own process; return it and its base URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medverify.testing.fake_openai",
            "--latency",
            str(latency),
            "--responder",
            responder,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"fake server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}/v1"
