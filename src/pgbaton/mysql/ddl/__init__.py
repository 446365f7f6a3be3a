"""Replicated DDL: parse a MySQL/MariaDB statement, translate it into actions on
the tracked table definitions, and plan the PostgreSQL statements for them.

Everything in this package is pure (no connections): ``parse`` turns text into
statement dataclasses, ``translate`` applies them to a snapshot of the tracked
``MyTable`` definitions and returns actions, ``plan`` derives PostgreSQL SQL
from old and new definitions.  ``pgbaton.replica.ddl`` executes the result.
"""
