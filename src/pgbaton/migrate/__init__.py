"""PostgreSQL -> PostgreSQL migration by logical replication, with switchover (issue 6).

Pure decisions live in ``names``, ``plan``, ``steps`` and ``switchover``; ``probe`` observes
servers, ``execute`` acts on them, ``catalog`` records progress on the target.
"""
