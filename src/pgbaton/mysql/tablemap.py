"""Faster table map events for mysql-replication.

Every row event in a binlog is preceded by a table map event describing the
table.  mysql-replication parses each one from scratch (column objects, optional
metadata), which is the larger part of its CPU time on small transactions.  The
bytes of a table map event are identical as long as the table and its id do not
change, so this subclass parses each distinct event body once and reuses the
result.  It is registered in place of the library's class for the lifetime of
the process; a different table definition has different bytes and is parsed anew.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from pymysqlreplication import packet as _packet
from pymysqlreplication.constants.BINLOG import TABLE_MAP_EVENT
from pymysqlreplication.event import BinLogEvent
from pymysqlreplication.row_event import TableMapEvent

log = logging.getLogger(__name__)

_SKIP = frozenset({"packet", "timestamp", "event_size", "_ctl_connection", "table_map"})


class CachingTableMapEvent(TableMapEvent):  # type: ignore[misc]
    _parsed: ClassVar[dict[bytes, dict[str, Any]]] = {}
    _max_entries: ClassVar[int] = 4096

    def __init__(self, from_packet: Any, event_size: int, table_map: dict[int, Any], ctl_connection: Any,
                 **kwargs: Any) -> None:
        raw = _peek(from_packet, event_size)
        state = self._parsed.get(raw) if raw is not None else None
        if state is None:
            super().__init__(from_packet, event_size, table_map, ctl_connection, **kwargs)
            if raw is not None and self._processed:
                if len(self._parsed) >= self._max_entries:
                    self._parsed.clear()
                self._parsed[raw] = {k: v for k, v in self.__dict__.items() if k not in _SKIP}
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


_installed = False


def install() -> bool:
    """Use the caching class for table map events. Returns False if the library layout differs."""
    global _installed
    if _installed:
        return True
    mapping = getattr(_packet.BinLogPacketWrapper, "_BinLogPacketWrapper__event_map", None)
    if not isinstance(mapping, dict) or mapping.get(TABLE_MAP_EVENT) is not TableMapEvent:
        log.info("mysql-replication layout not recognised; table map events are parsed every time")
        return False
    mapping[TABLE_MAP_EVENT] = CachingTableMapEvent
    _installed = True
    return True
