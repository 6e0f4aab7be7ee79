"""The project's own documents as strict pydantic models, one concept per module.

- ``rebalancer.core.documents`` (shared with the planner): the base model, the number types
  and the one-line error every malformed document becomes.
- ``status``: the states of a trade and of a run, and a run's mode (StrEnums; SQLite and the
  JSON documents store their string values).
- ``plan``: the PLAN file ``plan -o`` writes and ``simulate``/``apply``/``export`` read.
- ``journal``: journal rows in (a new trade) and out (trades, runs, their summaries).
- ``manifest``: the ``manifest.json`` of ``export --unsigned``.

Our documents forbid unknown fields; a missing or mistyped one is a ``ConfigError`` naming it.
"""
