"""A MySQL table definition as pgbaton tracks it.

Read from information_schema at init, stored as JSON in the catalog
(``tables.definition``) and later changed by replicated DDL.  The type mapping,
snapshot copy and binlog decoding all work from this model, never from the
PostgreSQL catalog.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from pgbaton.mysql import names


@dataclass(frozen=True)
class MyColumn:
    name: str
    position: int                   # ORDINAL_POSITION, 1-based
    data_type: str                  # DATA_TYPE, lower case: 'int', 'varchar', 'enum', ...
    column_type: str                # COLUMN_TYPE: 'int(10) unsigned', "enum('a','b')", ...
    nullable: bool = True
    default: str | None = None      # COLUMN_DEFAULT as the server reports it
    extra: str = ""                 # EXTRA: 'auto_increment', 'STORED GENERATED', ...
    char_max_length: int | None = None
    numeric_precision: int | None = None
    numeric_scale: int | None = None
    datetime_precision: int | None = None
    srid: int | None = None         # spatial reference declared for a geometry column
    charset: str | None = None
    collation: str | None = None
    generation_expression: str | None = None
    comment: str = ""
    pg_name: str = ""               # the PostgreSQL name chosen for it (mysql/names.py); "" = not yet

    @property
    def target(self) -> str:
        """The column's name in PostgreSQL."""
        return self.pg_name or names.natural_column(self.name)

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type.lower()

    @property
    def auto_increment(self) -> bool:
        return "auto_increment" in self.extra.lower()

    @property
    def generated(self) -> str | None:
        """'VIRTUAL' or 'STORED' for generated columns, else None."""
        e = self.extra.upper()
        if "STORED" in e or "PERSISTENT" in e:
            return "STORED"
        if "VIRTUAL" in e or (self.generation_expression and "GENERATED" in e):
            return "VIRTUAL"
        return None


@dataclass(frozen=True)
class MyIndex:
    name: str
    columns: tuple[tuple[str, int | None], ...]   # (column, prefix length or None)
    unique: bool = False
    primary: bool = False
    kind: str = "BTREE"                           # BTREE, HASH, FULLTEXT, SPATIAL


@dataclass(frozen=True)
class MyTable:
    db: str
    name: str
    columns: tuple[MyColumn, ...]
    indexes: tuple[MyIndex, ...] = ()
    auto_increment: int | None = None   # next AUTO_INCREMENT value (information_schema.TABLES)
    engine: str | None = None
    comment: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def primary_key(self) -> MyIndex | None:
        return next((i for i in self.indexes if i.primary), None)

    @property
    def pk_columns(self) -> tuple[str, ...]:
        """Columns that identify a row: the primary key, else the first unique
        index whose columns are all NOT NULL, else () (whole-row match)."""
        pk = self.primary_key
        if pk is not None:
            return tuple(c for c, _ in pk.columns)
        by_name = {c.name: c for c in self.columns}
        for idx in self.indexes:
            if idx.unique and all(p is None for _, p in idx.columns) and all(
                c in by_name and not by_name[c].nullable for c, _ in idx.columns
            ):
                return tuple(c for c, _ in idx.columns)
        return ()

    def column(self, name: str) -> MyColumn:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def target(self) -> str:
        """The table's PostgreSQL name before collisions in its schema (mysql/names.py)."""
        return names.natural_table(self.name)

    def pg(self, column: str) -> str:
        """The PostgreSQL name of one of its columns, by MySQL name (case-insensitive, as
        MySQL compares column names); a name it does not have maps by the rules alone."""
        for c in self.columns:
            if c.name == column:
                return c.target
        low = column.lower()
        for c in self.columns:
            if c.name.lower() == low:
                return c.target
        return names.natural_column(column)

    @property
    def pg_pk_columns(self) -> tuple[str, ...]:
        return tuple(self.pg(c) for c in self.pk_columns)

    def named(self, previous: MyTable | None = None) -> MyTable:
        """This table with every column's PostgreSQL name chosen: names ``previous`` (the
        table as it was before a DDL statement) or this table already recorded are kept."""
        recorded = {c.name: c.pg_name for c in self.columns if c.pg_name}
        if previous is not None:
            for c in previous.columns:
                if c.name not in recorded:
                    recorded[c.name] = c.target
        chosen = names.column_names([c.name for c in self.columns], recorded)
        if all(c.pg_name == chosen[c.name] for c in self.columns):
            return self
        return replace(self, columns=tuple(replace(c, pg_name=chosen[c.name]) for c in self.columns))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MyTable:
        cols = tuple(MyColumn(**c) for c in data["columns"])
        idx = tuple(
            MyIndex(
                name=i["name"],
                columns=tuple((c, p) for c, p in i["columns"]),
                unique=i["unique"], primary=i["primary"], kind=i.get("kind", "BTREE"),
            )
            for i in data.get("indexes", ())
        )
        return cls(
            db=data["db"], name=data["name"], columns=cols, indexes=idx,
            auto_increment=data.get("auto_increment"), engine=data.get("engine"),
            comment=data.get("comment", ""), extra=dict(data.get("extra", {})),
        )
