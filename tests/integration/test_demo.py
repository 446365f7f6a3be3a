"""`make demo` works: the sandbox demo runs end to end (smaller) and proves equality."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end(sandbox_root: Path) -> None:
    base = sandbox_root / "demo"
    cmd = [sys.executable, "-m", "pgbaton.sandbox.demo", "run", "--dir", str(base), "--rows", "2000", "--seconds", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "the PostgreSQL replica equals the MariaDB source" in proc.stdout
    assert "DIFFERENT" not in proc.stdout
    clean = subprocess.run([sys.executable, "-m", "pgbaton.sandbox.demo", "clean", "--dir", str(base)],
                           capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0 and not base.exists()
