"""PostgreSQL high availability under Pacemaker: pure decisions and the executors behind them.

``model`` and ``decide`` are pure (no I/O); ``controldata``, ``probe``, ``instance``,
``rewind``, ``rebuild`` and ``sync`` act on a real PostgreSQL instance; ``proc`` runs their
child processes in process groups of their own.
"""
