"""Watching pgbaton: what the replica, the migrations and the HA cluster are doing, read
from the catalogs and the servers, exported as Prometheus metrics and a status page."""
