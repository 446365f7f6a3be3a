"""Faster table map events for mysql-replication.

Every row event in a binlog is preceded by a table map event describing the
table.  mysql-replication parses each one from scratch (column objects, optional
metadata), which is the larger part of its CPU time on small transactions.  The
bytes of a table map event are identical as long as the table and its id do not
change, so pgbaton parses each distinct event body once and reuses the result,
for the lifetime of the process; a different table definition (or a reused
table id) has different bytes and is parsed anew.
"""

from __future__ import annotations

import logging
from typing import Any

from pymysqlreplication.event import BinLogEvent
from pymysqlreplication.row_event import TableMapEvent

log = logging.getLogger(__name__)

_SKIP = frozenset({"packet", "timestamp", "event_size", "_ctl_connection", "table_map", "dbms"})
_FILTERS = ("only_tables", "ignored_tables", "only_schemas", "ignored_schemas", "freeze_schema",
            "optional_meta_data")
_MAX_ENTRIES = 4096
_parsed: dict[tuple[bytes, str], dict[str, Any]] = {}
_library_init = TableMapEvent.__init__


def _caching_init(self: Any, from_packet: Any, event_size: int, table_map: dict[int, Any], ctl_connection: Any,
                  **kwargs: Any) -> None:
    """Replacement for TableMapEvent.__init__: parse each distinct event body once.

    The cache key includes the stream's filters, so readers with different
    filters never share a decision to skip or keep a table."""
    raw = _peek(from_packet, event_size)
    key = (raw, repr([kwargs.get(f) for f in _FILTERS])) if raw is not None else None
    state = _parsed.get(key) if key is not None else None
    if state is None:
        _library_init(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
        if key is not None and self._processed:
            if len(_parsed) >= _MAX_ENTRIES:
                _parsed.clear()
            _parsed[key] = {k: v for k, v in self.__dict__.items() if k not in _SKIP}
        return
    BinLogEvent.__init__(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
    self.__dict__.update(state)
    table_map[self.table_id] = self.table_obj


def _peek(from_packet: Any, size: int) -> bytes | None:
    """The event body without consuming it, when the packet layout is the expected one."""
    inner = getattr(from_packet, "packet", None)
    data = getattr(inner, "_data", None)
    pos = getattr(inner, "_position", None)
    if not isinstance(data, bytes | bytearray) or not isinstance(pos, int):
        return None
    return bytes(data[pos:pos + int(size)])


def _read_column_names(self: Any, length: int) -> list[str]:
    """COLUMN_NAME optional metadata: each name is a length-encoded string (MySQL's and
    MariaDB's ``net_store_length``).  mysql-replication 1.0.17 reads the length as a
    7-bit varint instead, which misreads every name of 128 bytes or more (a 64-character
    name in most non-Latin scripts) and breaks the whole stream."""
    result = []
    read_until = self.packet.read_bytes + length
    while self.packet.read_bytes < read_until:
        n = self.packet.read_length_coded_binary()
        result.append(self.packet.read(n).decode())
    return result


def _read_type_values(self: Any, length: int) -> list[list[str]] | None:
    """ENUM_STR_VALUE / SET_STR_VALUE optional metadata: member strings are length-encoded
    too (the same misreading as above for members of 128 bytes or more)."""
    result = []
    read_until = self.packet.read_bytes + length
    if self.packet.read_bytes >= read_until:
        return None
    while self.packet.read_bytes < read_until:
        values = []
        for _ in range(self.packet.read_length_coded_binary()):
            raw = self.packet.read(self.packet.read_length_coded_binary())
            try:
                values.append(raw.decode())
            except UnicodeDecodeError:
                values.append("")       # as the library does for members it cannot decode
        result.append(values)
    return result


_installed = False


def install() -> bool:
    """Make table map parsing cache its results (process-wide, transparent to every reader),
    and read long column names and ENUM/SET members correctly.

    The class itself is kept, so every reader's event filters keep working; only its
    constructor learns to reuse an earlier parse of identical bytes."""
    global _installed
    if not _installed:
        TableMapEvent.__init__ = _caching_init  # type: ignore[method-assign]
        TableMapEvent._read_column_names = _read_column_names  # type: ignore[method-assign]
        TableMapEvent._read_type_values = _read_type_values  # type: ignore[method-assign]
        _installed = True
    return True
