"""Performance reports and backtests: what rebalancing earned and what it cost.

- ``metrics``: the statistics (TWR, volatility, Sharpe, Sortino, drawdown), one definition each.
- ``prices_csv``: the ``date,symbol,price_usd`` price history a backtest replays.
- ``backtest``: replays a history under the planner's bands, triggers and cost model.
- ``tracking``: the same metrics from the journal (runs, trades, snapshots) and tax lots.
- ``charts`` / ``html``: matplotlib PNGs and the one-file offline HTML report.

matplotlib is imported only by ``charts``, and only when a chart is drawn.
"""
