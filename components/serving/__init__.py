"""Serving: the batching engines, request limits, bearer-token guard and metrics that
deploy/service.py puts together. No BentoML import at module level: tested on their own."""
