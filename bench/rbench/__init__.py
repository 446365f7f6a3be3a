"""Helpers of the replica benchmark (bench/replica_bench.py).

The benchmark compares pgbaton with pg_chameleon 2.0.21 and with a raw
``mariadb | psql \\copy`` floor on sysbench data.  Each module covers one
part: ``env`` (servers, sysbench, the source), ``verify`` (checksums and the
marker table), ``floor``, ``cdc`` (tool-independent CDC measurements),
``chameleon`` and ``pgbaton_tool`` (the two peers), ``report``.
"""
