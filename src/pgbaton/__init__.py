"""pgbaton: hand a live database over to PostgreSQL without downtime."""

__version__ = "0.1.0"
