"""MySQL query rules rewritten for PostgreSQL in translated views (no servers)."""

from __future__ import annotations

from pgbaton.mysql.ddl.views import translate_view

S = {"s": "app"}


def _pg(query: str) -> str:
    out = translate_view(query, "s", S).select
    assert out is not None
    return out


def test_a_number_as_a_condition_is_compared_with_zero() -> None:
    out = _pg("select if(c.active, 'yes', '') AS a from s.c c where c.active and not c.gone")
    assert 'CASE WHEN ("c"."active") <> 0 THEN' in out
    assert 'WHERE ("c"."active") <> 0 AND NOT ("c"."gone") <> 0' in out


def test_predicates_and_simple_case_stay() -> None:
    out = _pg("select case c.k when 1 then 'a' end AS v from s.c c where c.k = 1 or c.j is null")
    assert 'CASE "c"."k" WHEN 1 THEN' in out and "<> 0" not in out


def test_columns_of_tables_the_group_by_does_not_name_take_min() -> None:
    out = _pg("select concat(c.city, ',', s.name) AS store, sum(p.amount) AS total from s.p p join s.st s "
              "on p.sid = s.id join s.c c on s.cid = c.id group by s.id order by c.city")
    assert 'MIN("c"."city")' in out and 'MIN("s"' not in out
    assert 'ORDER BY MIN("c"."city")' in out and 'SUM("p"."amount")' in out


def test_group_concat_distinct_ordered_by_its_leading_part() -> None:
    out = _pg("select group_concat(distinct concat(c.name, ': ', c.x) order by c.name separator '; ') AS f "
              "from s.c c")
    assert """ORDER BY "c"."name" || ': ' || "c"."x\"""" in out
    other = _pg("select group_concat(distinct c.x order by c.name separator '; ') AS f from s.c c")
    assert 'ORDER BY "c"."name"' in other           # left alone: PostgreSQL refuses it
