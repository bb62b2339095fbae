"""Evals: datasets, evaluators (metrics), the suite runner, reports and the regression gate."""

__all__: list[str] = []
