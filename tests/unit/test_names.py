"""The MySQL -> PostgreSQL identifier mapping (mysql/names.py), without servers."""

from __future__ import annotations

import random

from pgbaton.mysql import names
from pgbaton.mysql.model import MyColumn, MyIndex, MyTable


def _col(name: str, pos: int = 1) -> MyColumn:
    return MyColumn(name=name, position=pos, data_type="int", column_type="int", nullable=False)


def test_short_names_stay() -> None:
    for n in ("id", "Größe", "select", "a b", 'q"uote', "back`tick", "dot.ted", "XMIN", "x" * 63):
        assert names.natural_column(n) == n
        assert names.fit(n) == n


def test_long_names_cut_and_hashed() -> None:
    a, b = "a" * 63 + "1", "a" * 63 + "2"
    pa, pb = names.fit(a), names.fit(b)
    assert pa != pb and len(pa.encode()) <= 63 and len(pb.encode()) <= 63
    assert pa.startswith("a" * 54 + "_")
    assert names.fit(a) == pa                                      # deterministic
    multi = "é" * 64                                               # 128 bytes: cut on a character boundary
    assert len(names.fit(multi).encode()) <= 63
    assert names.fit(multi).encode().decode() == names.fit(multi)


def test_system_columns_suffixed() -> None:
    for n in names.SYSTEM_COLUMNS:
        assert names.natural_column(n) == n + "_"
    # a name that needs no change keeps it; the suffixed one then takes _2
    assert names.column_names(["xmin", "xmin_"]) == {"xmin": "xmin__2", "xmin_": "xmin_"}
    assert names.column_names(["ctid", "ctid_", "ctid__2"]) == {"ctid": "ctid__3", "ctid_": "ctid_",
                                                                "ctid__2": "ctid__2"}


def test_recorded_names_kept() -> None:
    # a column keeps the name it was given, even where a fresh mapping would differ
    assert names.column_names(["xmin", "xmin_"], {"xmin": "xmin_"}) == {"xmin": "xmin_", "xmin_": "xmin__2"}


def test_collisions_resolved() -> None:
    long = "b" * 70
    hashed = names.fit(long)
    got = names.column_names([hashed, long])
    assert got[hashed] == hashed and got[long] != hashed and len(got[long].encode()) <= 63
    assert names.table_name("t", {"t", "t_2"}) == "t_3"


def test_random_names_unique_and_fit() -> None:
    rnd = random.Random(7)
    alphabet = "abcXYZ_ $.\"`'é中😀" + "".join(sorted(names.SYSTEM_COLUMNS))
    for _ in range(300):
        cols = list(dict.fromkeys(
            "".join(rnd.choice(alphabet) for _ in range(rnd.choice((1, 2, 5, 60, 63, 64)))).strip() or "c"
            for _ in range(rnd.randint(1, 12))))
        lower_seen: dict[str, str] = {}
        cols = [c for c in cols if lower_seen.setdefault(c.lower(), c) == c]   # MySQL: case-insensitive
        got = names.column_names(cols)
        assert len(set(got.values())) == len(cols)
        assert all(len(v.encode()) <= 63 and v not in names.SYSTEM_COLUMNS for v in got.values())


def test_table_model_names() -> None:
    t = MyTable("d", "t", (_col("xmin", 1), _col("c" * 64, 2)),
                (MyIndex("PRIMARY", (("xmin", None),), unique=True, primary=True),)).named()
    assert t.columns[0].pg_name == "xmin_" and t.pg_pk_columns == ("xmin_",)
    assert t.pg("C" * 64) == t.columns[1].target                   # MySQL compares case-insensitively
    again = MyTable.from_json(t.to_json())
    assert again == t and again.named() is again
    # a renamed column (pg_name reset by ALTER) is named anew; the others keep theirs
    from dataclasses import replace

    renamed = replace(t, columns=(t.columns[0], replace(t.columns[1], name="tableoid", pg_name="")))
    assert renamed.named(previous=t).pg("tableoid") == "tableoid_"
