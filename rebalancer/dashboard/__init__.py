"""``rebalancer dashboard``: a read-only local web page over the journal and a live read.

- ``data``: what the page shows, gathered by one background thread: the journal (through its
  public methods) and, every ``--refresh``, balances, prices, drift and the plan from the same
  functions ``balances``/``drift``/``plan`` use. It never builds an engine or a signer.
- ``page``: the HTML of every panel and the SVG charts (matplotlib, drawn on the server).
- ``server``: the standard library's threaded HTTP server: GET only, one page, its own CSS and
  script, the charts, and server-sent events that tell the page when to fetch new panels.
"""
