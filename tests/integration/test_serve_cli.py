"""`pgbaton serve` as a process: prints its URLs, answers, warns on a non-loopback address
without a token, and stops on SIGTERM (no database needed for a configuration without
sources, migrations or HA nodes)."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path


def _serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    cfg = tmp_path / "pgbaton.yaml"
    cfg.write_text("target: {port: 1}\n")
    proc = subprocess.Popen([sys.executable, "-m", "pgbaton", "-c", str(cfg), "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "status page http://" in line, line
    return proc, line.split("status page ", 1)[1].split()[0]


def test_serve_prints_answers_and_stops(tmp_path: Path) -> None:
    proc, url = _serve(tmp_path, "--port", "0")
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "healthz", timeout=30) as resp:
            assert resp.read() == b"ok\n"
        with urllib.request.urlopen(url + "metrics", timeout=30) as resp:
            text = resp.read().decode()
        assert 'pgbaton_observe_read_failed{part="replica"} 0.0' in text
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert b"<title>pgbaton status</title>" in resp.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0
    assert proc.stderr is not None and proc.stderr.read() == ""      # quiet by default


def test_serve_warns_without_a_token_off_loopback(tmp_path: Path) -> None:
    proc, url = _serve(tmp_path, "--host", "0.0.0.0", "--port", "0")
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "warning: listening on 0.0.0.0 without a token" in err
