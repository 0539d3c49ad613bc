"""Dashboards: the Evidently workspace (workspace.py, metrics.py) and `genloop dashboard`
(server.py), which serves it with `evidently ui`."""
