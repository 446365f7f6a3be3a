"""A short seeded torture run of the replica in the suite (the long run's table is in docs/replica.md).

`make torture-replica` runs the long version.  A seed that ever diverged is kept in
REGRESSION_SEEDS and run every time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import replica as torture

# iterations that once found a bug, kept as regression runs:
# (seed, gtid, cascades, DDL level (--ddl), steps, what it found)
REGRESSION_SEEDS: list[tuple[int, bool, bool, int, int, str]] = [
    (1000, False, False, 0, 80,
     "an idle replica's read position stopped 40 bytes short of the head (binlog checkpoint event after "
     "the last commit), so it never showed as caught up"),
    (200028, True, True, 0, 150,
     "a MySQL connection error while reading foreign keys during a MariaDB restart escaped the supervisor "
     "and ended the replica process"),
    (31001, False, True, 1, 120,
     "a DDL statement older than a table's re-copy was replayed after the copy had read the table's newer "
     "definition: 'column c7 already exists', recorded as an error and the table copied once more"),
    (54041, False, True, 2, 120,
     "the re-copy worker took the source's lock while the supervisor restarted the reader after a lost "
     "binlog connection; the restart found the lock held and the replica process ended (a race: about "
     "1 run in 4 before the fix)"),
]


@pytest.mark.parametrize(("use_gtid", "ddl", "seed", "steps", "fault_rate"), [
    (False, 0, 10, 100, 0.08), (True, 0, 11, 100, 0.08),
    (False, 2, 34, 120, 0.06), (True, 2, 35, 120, 0.06),   # with DDL in the workload (--ddl)
], ids=["filepos", "gtid", "filepos-ddl", "gtid-ddl"])
def test_short_seeded_run(sandbox_root: Path, use_gtid: bool, ddl: int, seed: int, steps: int,
                          fault_rate: float) -> None:
    root = sandbox_root / f"torture-{'gtid' if use_gtid else 'filepos'}-{ddl}"   # readable by the service users
    root.mkdir()
    root.chmod(0o1777)
    results = torture.run(root, seed=seed, iterations=3, steps=steps, fault_rate=fault_rate,
                          use_gtid=use_gtid, cascades=True, ddl=ddl)
    torture.print_table(results, use_gtid)
    bad = [r for r in results if not r.ok]
    assert not bad, [(r.seed, r.divergent, r.error) for r in bad]
    # the faults really happened
    assert sum(sum(r.faults.values()) for r in results) > 0


@pytest.mark.parametrize(("seed", "use_gtid", "cascades", "ddl", "steps", "found"), REGRESSION_SEEDS)
def test_regression_seed(sandbox_root: Path, seed: int, use_gtid: bool, cascades: bool, ddl: int, steps: int,
                         found: str) -> None:
    root = sandbox_root / f"torture-seed-{seed}"
    root.mkdir()
    root.chmod(0o1777)
    results = torture.run(root, seed=0, iterations=1, steps=steps, fault_rate=0.06, use_gtid=use_gtid,
                          cascades=cascades, only=seed, ddl=ddl)
    assert results[0].ok, (results[0].divergent, results[0].error)
