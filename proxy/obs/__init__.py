"""Observability: the structured log and the Prometheus metrics fed by its facts."""
