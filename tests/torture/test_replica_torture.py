"""A short seeded torture run of the replica in the suite (the long run's table is in docs/replica.md).

`make torture-replica` runs the long version.  A seed that ever diverged is kept in
REGRESSION_SEEDS and run every time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import replica as torture

# iterations that once found a bug, kept as regression runs: (seed, gtid, cascades, steps, what it found)
REGRESSION_SEEDS: list[tuple[int, bool, bool, int, str]] = [
    (1000, False, False, 80, "an idle replica's read position stopped 40 bytes short of the head (binlog "
                             "checkpoint event after the last commit), so it never showed as caught up"),
    (200028, True, True, 150, "a MySQL connection error while reading foreign keys during a MariaDB restart "
                              "escaped the supervisor and ended the replica process"),
]


# the same with DDL in the workload (--ddl LEVEL): (seed, gtid, level, steps, what it found)
REGRESSION_DDL_SEEDS: list[tuple[int, bool, int, int, str]] = [
    (31001, False, 1, 120, "a DDL statement older than a table's re-copy was replayed after the copy had "
                        "read the table's newer definition: 'column c7 already exists', recorded as an "
                        "error and the table copied once more"),
    (54041, False, 2, 120, "the re-copy worker took the source's lock while the supervisor restarted the "
                           "reader after a lost binlog connection; the restart found the lock held and the "
                           "replica process ended (a race: about 1 run in 4 before the fix)"),
]


@pytest.mark.parametrize("use_gtid", [False, True], ids=["filepos", "gtid"])
def test_short_seeded_run_with_ddl(sandbox_root: Path, use_gtid: bool) -> None:
    root = sandbox_root / f"torture-ddl-{'gtid' if use_gtid else 'filepos'}"
    root.mkdir()
    root.chmod(0o1777)
    results = torture.run(root, seed=35 if use_gtid else 34, iterations=3, steps=120, fault_rate=0.06,
                          use_gtid=use_gtid, cascades=True, ddl=2)
    torture.print_table(results, use_gtid)
    bad = [r for r in results if not r.ok]
    assert not bad, [(r.seed, r.divergent, r.error) for r in bad]


@pytest.mark.parametrize(("seed", "use_gtid", "level", "steps", "found"), REGRESSION_DDL_SEEDS)
def test_regression_ddl_seed(sandbox_root: Path, seed: int, use_gtid: bool, level: int, steps: int,
                             found: str) -> None:
    root = sandbox_root / f"torture-ddl-seed-{seed}"
    root.mkdir()
    root.chmod(0o1777)
    results = torture.run(root, seed=0, iterations=1, steps=steps, fault_rate=0.06, use_gtid=use_gtid,
                          cascades=True, only=seed, ddl=level)
    assert results[0].ok, (results[0].divergent, results[0].error)


@pytest.mark.parametrize("use_gtid", [False, True], ids=["filepos", "gtid"])
def test_short_seeded_run(sandbox_root: Path, use_gtid: bool) -> None:
    root = sandbox_root / f"torture-{'gtid' if use_gtid else 'filepos'}"   # readable by the service users
    root.mkdir()
    root.chmod(0o1777)
    results = torture.run(root, seed=11 if use_gtid else 10, iterations=3, steps=100, fault_rate=0.08,
                          use_gtid=use_gtid, cascades=True)
    torture.print_table(results, use_gtid)
    bad = [r for r in results if not r.ok]
    assert not bad, [(r.seed, r.divergent, r.error) for r in bad]
    # the faults really happened
    assert sum(sum(r.faults.values()) for r in results) > 0


@pytest.mark.parametrize(("seed", "use_gtid", "cascades", "steps", "found"), REGRESSION_SEEDS)
def test_regression_seed(sandbox_root: Path, seed: int, use_gtid: bool, cascades: bool, steps: int,
                         found: str) -> None:
    root = sandbox_root / f"torture-seed-{seed}"
    root.mkdir()
    root.chmod(0o1777)
    results = torture.run(root, seed=0, iterations=1, steps=steps, fault_rate=0.06, use_gtid=use_gtid,
                          cascades=cascades, only=seed)
    assert results[0].ok, (results[0].divergent, results[0].error)
