"""PostgreSQL statements for translated DDL actions, derived from old vs new
tracked definitions with the same type mapping and naming as ``replica init``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

from psycopg import sql

from pgbaton.mysql import pgddl
from pgbaton.mysql.ddl.genexpr import to_postgres
from pgbaton.mysql.ddl.translate import Alter
from pgbaton.mysql.model import MyColumn, MyIndex, MyTable
from pgbaton.mysql.typemap import PgColumn, TypeOptions, default_expression, kind, map_column, set_members

log = logging.getLogger(__name__)

OptsFor = Callable[[MyTable], TypeOptions]


def create_sql(table: MyTable, schema: str, opts: TypeOptions, name: str | None = None) -> list[sql.Composed]:
    """A new table, complete with keys and indexes (it is empty: no separate load step).
    ``name`` is its PostgreSQL name, chosen by the caller where nothing else stands."""
    return [*pgddl.create_table_sql(table, schema, opts, name=name),
            *pgddl.post_load_sql(table, schema, opts, name=name)]


def drop_sql(schema: str, name: str) -> list[sql.Composed]:
    return [sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, name))]


def truncate_sql(schema: str, name: str) -> list[sql.Composed]:
    return [sql.SQL("TRUNCATE {} RESTART IDENTITY").format(sql.Identifier(schema, name))]


def rename_sql(table: MyTable, old_schema: str, old_name: str, new_schema: str, new_name: str) -> list[sql.Composed]:
    """Move and rename the table, and rename its indexes to the new table's prefix."""
    out: list[sql.Composed] = []
    if old_schema != new_schema:
        out.append(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(sql.Identifier(old_schema, old_name),
                                                                  sql.Identifier(new_schema)))
    if old_name != new_name:
        out.append(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(new_schema, old_name),
                                                                 sql.Identifier(new_name)))
        for idx in table.indexes:
            out.append(_rename_index(new_schema, _pg_index(old_name, idx), _pg_index(new_name, idx)))
    return out


def _pg_index(target: str, idx: MyIndex) -> str:
    return pgddl.pg_name(target, "pkey") if idx.primary else pgddl.pg_name(target, idx.name)


def _rename_index(schema: str, old: str, new: str) -> sql.Composed:
    return sql.SQL("ALTER INDEX IF EXISTS {} RENAME TO {}").format(sql.Identifier(schema, old), sql.Identifier(new))


# -- ALTER ---------------------------------------------------------------------------------

def implicit_default(col: MyColumn) -> str | None:
    """The value MySQL gives existing rows for a new NOT NULL column without DEFAULT,
    in COLUMN_DEFAULT form."""
    t = col.data_type
    if t in ("enum",):
        members = set_members(col)
        return "'" + members[0].replace("'", "''") + "'" if members else "''"
    if t in ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "set", "binary", "varbinary",
             "tinyblob", "blob", "mediumblob", "longblob"):
        return "''"
    if t == "date":
        return "'0000-00-00'"
    if t in ("datetime", "timestamp"):
        return "'0000-00-00 00:00:00'"
    if t == "time":
        return "'00:00:00'"
    if t == "bit":
        return "b'0'"
    if t in ("tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "float",
             "double", "year"):
        return "0"
    return None


def _fill_sql(col: MyColumn, opts: TypeOptions) -> str | None:
    value = implicit_default(col)
    if value is None:
        return None
    text, _ = default_expression(replace(col, default=value), opts)
    return text


_INT_BITS = {"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "integer": 32, "bigint": 64}


def _int_range(col: MyColumn) -> tuple[int, int]:
    bits = _INT_BITS[col.data_type.lower()]
    return (0, 2 ** bits - 1) if col.unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _clip(value: sql.Composable, lo: int | Decimal, hi: int | Decimal, target: sql.Composable) -> sql.Composable:
    """Out-of-range values become the nearest limit, as MySQL does outside strict mode."""
    # GREATEST and LEAST pass over NULLs: a NULL must stay NULL
    return sql.SQL("(CASE WHEN {v} IS NULL THEN NULL ELSE LEAST(GREATEST({v}, {lo}), {hi}) END)::{t}").format(
        v=value, lo=sql.Literal(lo), hi=sql.Literal(hi), t=target)


def _members(col: MyColumn) -> sql.Composable:
    return sql.SQL("{}::text[]").format(sql.Literal(set_members(col)))


def _as_text(ident: sql.Identifier, ko: str) -> sql.Composable:
    return sql.SQL("array_to_string({}, ',')").format(ident) if ko == "set" else sql.SQL("{}::text").format(ident)


def _truncate_fraction(ident: sql.Identifier, old: MyColumn, new: MyColumn, target: sql.Composable,
                       cast: sql.Composable) -> sql.Composable | None:
    """Fewer fractional digits: MariaDB cuts them off (PostgreSQL's cast would round)."""
    p_old, p_new = old.datetime_precision or 0, new.datetime_precision or 0
    if p_new >= p_old:
        return None
    unit = 10 ** (6 - p_new)
    return sql.SQL("({v} - ((extract(microseconds from {v})::bigint % {u}) * interval '1 microsecond'))::{t}").format(
        v=cast, u=sql.Literal(unit), t=target)


def _using(ident: sql.Identifier, old: MyColumn, new: MyColumn, old_pc: PgColumn, new_pc: PgColumn,
           opts_old: TypeOptions, opts_new: TypeOptions) -> sql.Composable:
    """How existing values become the new type: the conversion MySQL does (outside strict
    mode, where it clips and cuts; strict mode only refuses what does not fit)."""
    ko, kn = kind(old, opts_old), kind(new, opts_new)
    target = sql.SQL(new_pc.type_sql)
    if kn == "bool" and ko != "bool":
        return sql.SQL("({} <> 0)").format(ident) if ko in ("int", "decimal", "float", "double") else \
            sql.SQL("({}::text::numeric <> 0)").format(ident)
    if ko == "bool":
        return sql.SQL("{}::int::{}").format(ident, target)
    if kn == "int" and ko in ("int", "decimal", "bit", "enum", "year"):
        lo, hi = _int_range(new)
        if ko == "enum":       # an ENUM's number is its member's position ('' is 0)
            value: sql.Composable = sql.SQL(
                "(CASE WHEN {c} IS NOT NULL THEN COALESCE(array_position({m}, {c}::text), 0) END)").format(
                m=_members(old), c=ident)
        elif ko == "bit":
            value = _bit_number(ident)
        else:
            value = sql.SQL("round({}::numeric)").format(ident)
        return _clip(value, lo, hi, target)
    if kn == "decimal" and ko in ("int", "decimal"):
        p, sc = new.numeric_precision or 10, new.numeric_scale or 0
        top = Decimal(10) ** (p - sc) - Decimal(1).scaleb(-sc)
        return _clip(sql.SQL("round({}::numeric, {})").format(ident, sql.Literal(sc)),
                     Decimal(0) if new.unsigned else -top, top, target)
    if kn == "year" and ko == "int":
        return sql.SQL("(CASE WHEN {c} IS NULL THEN NULL WHEN {c} = 0 THEN 0 WHEN {c} BETWEEN 1 AND 69 THEN {c} + 2000 "
                       "WHEN {c} BETWEEN 70 AND 99 THEN {c} + 1900 WHEN {c} BETWEEN 1901 AND 2155 THEN {c} "
                       "ELSE 0 END)::{t}").format(c=ident, t=target)
    if kn == "enum" and ko in ("enum", "set", "text"):
        # the member named (case-insensitively, trailing spaces ignored), else ''
        src = sql.SQL("lower(rtrim({}))").format(_as_text(ident, ko))
        whens = [sql.SQL("WHEN {} = lower({}) THEN {}").format(src, sql.Literal(m), sql.Literal(m))
                 for m in set_members(new)]
        return sql.SQL("(CASE WHEN {} IS NULL THEN NULL {} ELSE '' END)").format(ident, sql.SQL(" ").join(whens))
    if kn == "set" and ko in ("set", "enum", "text"):
        # members are sorted and filtered by the UPDATE of _set_members (no subquery allowed here)
        return ident if ko == "set" else sql.SQL(
            "CASE WHEN {c}::text = '' THEN '{{}}'::text[] ELSE string_to_array({c}::text, ',') END").format(c=ident)
    if ko == "set" and kn != "set":
        return sql.SQL("array_to_string({}, ',')::{}").format(ident, target)
    if ko == "binary" and kn not in ("binary", "geometry"):
        return sql.SQL("convert_from({}, 'UTF8')::{}").format(ident, target)
    if kn == "binary" and ko not in ("geometry",):
        data = ident if ko == "binary" else sql.SQL("convert_to({}::text, 'UTF8')").format(ident)
        n = new.char_max_length or 0
        if new.data_type.lower() == "binary" and n:      # padded with zero bytes, cut to n
            return sql.SQL("substring({} || decode(repeat('00', {}), 'hex') from 1 for {})").format(
                data, sql.Literal(n), sql.Literal(n))
        if new.data_type.lower() == "varbinary" and n:
            return sql.SQL("substring({} from 1 for {})").format(data, sql.Literal(n))
        return data
    if {ko, kn} == {"datetime", "timestamp"}:
        return sql.SQL("({} AT TIME ZONE 'UTC')::{}").format(ident, target)
    if ko == kn and ko in ("datetime", "timestamp", "time"):
        cut = _truncate_fraction(ident, old, new, target, ident)
        if cut is not None:
            return cut
    if ko in ("datetime", "timestamp") and kn == "time":
        return sql.SQL("{}::time::interval").format(ident)
    if ko == "bit" and kn == "bit":
        return _bit_resize(ident, new.numeric_precision or 1)
    if ko == "bit" and kn != "bit":
        return sql.SQL("{}::{}").format(_bit_number(ident), target)
    if kn == "bit" and ko in ("int", "decimal", "bool"):
        n = new.numeric_precision or 1
        # too wide or negative: every bit set, as MySQL clips
        return sql.SQL("(CASE WHEN {c} < 0 OR {c} >= {top} THEN repeat('1', {n})::bit({n}) "
                       "ELSE round({c}::numeric)::bigint::bit({n}) END)").format(
            c=ident, top=sql.Literal(2 ** n), n=sql.Literal(n))
    if kn == "bit" and ko != "bit":
        return sql.SQL("{}::bigint::{}").format(ident, target)
    if kn == "text" and new.data_type == "char" and old.data_type != "char":
        return sql.SQL("rtrim({}::text)::{}").format(ident, target)
    if kn == "json":
        return sql.SQL("{}::text::jsonb").format(ident)
    if ko in ("json", "time", "enum") or kn in ("enum",):
        return sql.SQL("{}::text::{}").format(ident, target)
    return sql.SQL("{}::{}").format(ident, target)


def _values_change(old: MyColumn, new: MyColumn, opts_old: TypeOptions, opts_new: TypeOptions) -> bool:
    """MySQL changes existing values although the PostgreSQL type stays the same
    (TINYINT -> TINYINT UNSIGNED, ENUM members dropped, BINARY padding...)."""
    if old.column_type.lower() == new.column_type.lower():
        return False
    ko, kn = kind(old, opts_old), kind(new, opts_new)
    if ko != kn:
        return True
    if ko == "int":
        return (old.data_type.lower(), old.unsigned) != (new.data_type.lower(), new.unsigned)
    if ko in ("enum", "set"):
        return not set(set_members(old)) <= set(set_members(new))
    if ko == "text":        # CHAR drops trailing spaces
        return new.data_type.lower() == "char" and old.data_type.lower() != "char"
    return ko != "json"


def _set_members(tbl: sql.Identifier, ident: sql.Identifier, new: MyColumn) -> sql.Composed:
    """A SET's values after a change: only the new definition's members (case-insensitively,
    trailing spaces ignored), each once, in definition order, as MySQL stores them."""
    return sql.SQL("UPDATE {t} SET {c} = ARRAY(SELECT u.m FROM unnest({m}) WITH ORDINALITY AS u(m, i) "
                   "WHERE lower(u.m) IN (SELECT lower(rtrim(e)) FROM unnest({c}) AS e) ORDER BY u.i) "
                   "WHERE {c} IS NOT NULL").format(t=tbl, c=ident, m=_members(new))


def _bit_number(ident: sql.Identifier) -> sql.Composable:
    """A BIT value as an unsigned number (BIT(64) values above 2^63 included)."""
    return sql.SQL("(CASE WHEN {c}::bigint < 0 THEN {c}::bigint::numeric + 18446744073709551616 "
                   "ELSE {c}::bigint::numeric END)").format(c=ident)


def _bit_resize(ident: sql.Identifier, n: int) -> sql.Composable:
    """BIT(m) -> BIT(n) as MySQL does it: the number is kept (PostgreSQL's own cast pads
    or cuts on the right); a value too wide for n bits becomes the largest one."""
    digits = sql.SQL("ltrim({}::text, '0')").format(ident)
    return sql.SQL("(CASE WHEN length({d}) > {n} THEN repeat('1', {n}) ELSE lpad({d}, {n}, '0') END)::bit({n})").format(
        d=digits, n=sql.Literal(n))


def alter_sql(a: Alter, schema: str, target: str, opts_old: TypeOptions, opts_new: TypeOptions) -> list[sql.Composed]:
    """PostgreSQL statements that turn the table of ``a.old`` into ``a.new``."""
    tbl = sql.Identifier(schema, target)
    old, new = a.old, a.new
    ren = dict(a.column_renames)
    old_by_new = {ren.get(c.name, c.name).lower(): c for c in old.columns}
    new_names = {c.name.lower() for c in new.columns}
    changed_type: set[str] = set()
    pcs_old = {c.name.lower(): map_column(c, opts_old) for c in old.columns}
    for c in new.columns:
        oc = old_by_new.get(c.name.lower())
        if oc is not None and map_column(c, opts_new).type_sql != pcs_old[oc.name.lower()].type_sql:
            changed_type.add(c.name.lower())
    out: list[sql.Composed] = []
    keep, drop_idx, add_idx = _index_diff(a, changed_type)
    for idx in drop_idx:
        if idx.primary:
            out.append(sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(
                tbl, sql.Identifier(pgddl.pg_name(target, "pkey"))))
        else:
            out.append(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(schema, _pg_index(target, idx))))
    for old_name, new_name in keep:
        out.append(_rename_index(schema, pgddl.pg_name(target, old_name), pgddl.pg_name(target, new_name)))
    # PostgreSQL names: a renamed column takes the name the new definition gives it
    pg_ren = tuple((old.pg(o), new.pg(n)) for o, n in a.column_renames)
    out.extend(_column_renames(tbl, pg_ren))
    for c in old.columns:
        if ren.get(c.name, c.name).lower() not in new_names:
            gone = new.pg(ren[c.name]) if c.name in ren else c.target
            out.append(sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(tbl, sql.Identifier(gone)))
    order = [new.pg(ren.get(c, c)) for c in old.pk_columns]
    for c in new.columns:
        oc = old_by_new.get(c.name.lower())
        if oc is None:
            out.extend(_add_column(tbl, schema, target, c, opts_new, order))
        else:
            out.extend(_change_column(tbl, schema, target, oc, c, opts_old, opts_new))
        out.extend(_generated_fill(tbl, new, oc, c, opts_new))
    if new.comment != old.comment:
        out.append(sql.SQL("COMMENT ON TABLE {} IS {}").format(tbl, sql.Literal(new.comment or None)))
    stub = replace(new, indexes=tuple(add_idx))
    out.extend(s for s in pgddl.post_load_sql(stub, schema, opts_new, name=target)
               if not _is_setval(s) or _identity_moved(old, new, opts_old, opts_new))
    return out


def _generated_fill(tbl: sql.Identifier, new: MyTable, old: MyColumn | None, col: MyColumn,
                    opts: TypeOptions) -> list[sql.Composed]:
    """Existing rows' values of a generated column added or given a new expression
    (no row event carries them).  Untranslatable expressions re-copy the table instead."""
    expr = col.generation_expression
    if expr is None or (old is not None and old.generation_expression == expr):
        return []
    value = to_postgres(expr, {c.name: c for c in new.columns if c.name != col.name}, col)
    if value is None:
        return []
    return [sql.SQL("UPDATE {} SET {} = ({})::{}").format(tbl, sql.Identifier(col.target), value,
                                                         sql.SQL(map_column(col, opts).type_sql))]


def _is_setval(stmt: sql.Composed) -> bool:
    return "setval" in repr(stmt)


def _identity_moved(old: MyTable, new: MyTable, opts_old: TypeOptions, opts_new: TypeOptions) -> bool:
    """Identity sequences are set again when AUTO_INCREMENT= changed or an identity was added."""
    if new.auto_increment != old.auto_increment:
        return True
    had = {c.name.lower() for c in old.columns if map_column(c, opts_old).identity}
    return any(map_column(c, opts_new).identity and c.name.lower() not in had for c in new.columns)


def _index_diff(a: Alter, changed_type: set[str]) -> tuple[list[tuple[str, str]], list[MyIndex], list[MyIndex]]:
    """(indexes kept under a new name, indexes to drop, indexes to create)."""
    ren = dict(a.column_renames)
    iren = {k.lower(): v for k, v in a.index_renames}
    new_by_name = {i.name.lower(): i for i in a.new.indexes}
    keep: list[tuple[str, str]] = []
    drop: list[MyIndex] = []
    kept_names: set[str] = set()
    for idx in a.old.indexes:
        moved = replace(idx, name=iren.get(idx.name.lower(), idx.name),
                        columns=tuple((ren.get(c, c), p) for c, p in idx.columns))
        same = new_by_name.get(moved.name.lower())
        if same is not None and same == moved and not any(c.lower() in changed_type for c, _ in same.columns):
            kept_names.add(same.name.lower())
            if moved.name != idx.name and not idx.primary:
                keep.append((idx.name, moved.name))
        else:
            drop.append(idx)
    add = [i for i in a.new.indexes if i.name.lower() not in kept_names]
    return keep, drop, add


def _column_renames(tbl: sql.Identifier, renames: tuple[tuple[str, str], ...]) -> list[sql.Composed]:
    out: list[sql.Composed] = []
    pairs = [(o, n) for o, n in renames if o != n]
    if len(pairs) > 1:        # a swap or chain: go through temporary names
        temp = [(o, f"pgbaton_tmp_{i}") for i, (o, _) in enumerate(pairs)]
        pairs = temp + [(t, n) for (_, t), (_, n) in zip(temp, pairs, strict=True)]
    for o, n in pairs:
        out.append(sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(tbl, sql.Identifier(o), sql.Identifier(n)))
    return out


def _column_def(pc: PgColumn, default_sql: str | None) -> sql.Composable:
    parts: list[sql.Composable] = [sql.Identifier(pc.name), sql.SQL(pc.type_sql)]
    if pc.identity:
        parts.append(sql.SQL("GENERATED BY DEFAULT AS IDENTITY"))
    if default_sql is not None:
        parts.append(sql.SQL("DEFAULT {}").format(sql.SQL(default_sql)))
    if not pc.nullable:
        parts.append(sql.SQL("NOT NULL"))
    return sql.SQL(" ").join(parts)


def _add_column(tbl: sql.Identifier, schema: str, target: str, col: MyColumn,
                opts: TypeOptions, order: list[str]) -> list[sql.Composed]:
    pc = map_column(col, opts)
    for w in pc.warnings:
        log.warning("%s: %s", col.name, w)
    if pc.identity:
        return _add_identity(tbl, col, pc, order)
    fill = None
    if not pc.nullable and pc.default_sql is None and not pc.identity:
        fill = _fill_sql(col, opts)
    out = [sql.SQL("ALTER TABLE {} ADD COLUMN {}").format(tbl, _column_def(pc, pc.default_sql or fill))]
    if fill is not None:
        out.append(sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT").format(tbl, sql.Identifier(col.target)))
    if pc.comment:
        out.append(sql.SQL("COMMENT ON COLUMN {} IS {}").format(sql.Identifier(schema, target, col.target),
                                                                 sql.Literal(pc.comment)))
    return out


def _add_identity(tbl: sql.Identifier, col: MyColumn, pc: PgColumn, order: list[str]) -> list[sql.Composed]:
    """An AUTO_INCREMENT column added to a table with rows: MySQL numbers the rows in
    the order of the table's clustered index (primary key, else the first unique NOT
    NULL index); without one, PostgreSQL's physical order is the best guess."""
    ident = sql.Identifier(col.target)
    by = sql.SQL(", ").join(sql.Identifier(c) for c in order) if order else sql.SQL("ctid")
    return [
        sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(tbl, ident, sql.SQL(pc.type_sql)),
        sql.SQL("UPDATE {t} SET {c} = s.n FROM (SELECT ctid AS r, row_number() OVER (ORDER BY {by}) AS n "
                "FROM {t}) AS s WHERE {t}.ctid = s.r").format(t=tbl, c=ident, by=by),
        sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL").format(tbl, ident),
        sql.SQL("ALTER TABLE {} ALTER COLUMN {} ADD GENERATED BY DEFAULT AS IDENTITY").format(tbl, ident),
    ]


def _change_column(tbl: sql.Identifier, schema: str, target: str, old: MyColumn, new: MyColumn,
                   opts_old: TypeOptions, opts_new: TypeOptions) -> list[sql.Composed]:
    po, pn = map_column(old, opts_old), map_column(new, opts_new)
    ident = sql.Identifier(new.target)

    def alter(action: str, *args: sql.Composable) -> sql.Composed:
        return sql.SQL("ALTER TABLE {} ALTER COLUMN {} " + action).format(tbl, ident, *args)

    out: list[sql.Composed] = []
    # the PostgreSQL type may stay while MySQL changes values (TINYINT -> TINYINT UNSIGNED,
    # ENUM members dropped, fewer fractional digits...): the conversion runs then too
    type_changed = po.type_sql != pn.type_sql or _values_change(old, new, opts_old, opts_new)
    default_changed = po.default_sql != pn.default_sql
    if (type_changed or default_changed or pn.identity) and po.default_sql is not None:
        out.append(alter("DROP DEFAULT"))
    if po.identity and (not pn.identity or type_changed):
        out.append(alter("DROP IDENTITY IF EXISTS"))
    if type_changed:
        out.append(alter("TYPE {} USING {}", sql.SQL(pn.type_sql),
                         _using(ident, old, new, po, pn, opts_old, opts_new)))
        if kind(new, opts_new) == "set" and kind(old, opts_old) in ("set", "enum", "text"):
            out.append(_set_members(tbl, ident, new))
    if po.nullable and not pn.nullable:
        fill = _fill_sql(new, opts_new)
        if fill is not None:
            out.append(sql.SQL("UPDATE {} SET {} = {} WHERE {} IS NULL").format(tbl, ident, sql.SQL(fill), ident))
        out.append(alter("SET NOT NULL"))
    elif pn.nullable and not po.nullable:
        out.append(alter("DROP NOT NULL"))
    if pn.identity and (not po.identity or type_changed):
        out.append(alter("ADD GENERATED BY DEFAULT AS IDENTITY"))
        out.append(sql.SQL(
            "SELECT setval(pg_get_serial_sequence(quote_ident({s}) || '.' || quote_ident({t}), {c}), "
            "GREATEST(COALESCE(MAX({ci}), 0) + 1, 1), false) FROM {tbl}").format(
            s=sql.Literal(schema), t=sql.Literal(target), c=sql.Literal(new.target), ci=ident, tbl=tbl))
    if pn.default_sql is not None and (type_changed or default_changed or pn.identity is False and po.identity):
        out.append(alter("SET DEFAULT {}", sql.SQL(pn.default_sql)))
    if po.comment != pn.comment:
        out.append(sql.SQL("COMMENT ON COLUMN {} IS {}").format(sql.Identifier(schema, target, new.target),
                                                                 sql.Literal(pn.comment)))
    return out
