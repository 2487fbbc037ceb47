"""``azsql-bulk bench``: how fast a database takes loads, and with how few connections.

- :mod:`engine.bench.datasets`: the generated datasets and the batch stream a step loads;
- :mod:`engine.bench.server_view`: what the server saw (``sys.dm_db_resource_stats``, the
  log-rate cap, the log-rate-governor waits), and what it would not show, and why;
- :mod:`engine.bench.scratch`: the scratch schema and tables, the permission check;
- :mod:`engine.bench.sweep`: the steps (workers x rows per batch x transport), each a load
  through :func:`engine.transfer.transfer` into its own scratch table;
- :mod:`engine.bench.recommend`: the fewest workers that reach the cap;
- :mod:`engine.bench.report`: the table, the JSON, the chart and the HTML page.
"""
