"""Benchmark harness of the reference service: ``python -m bench``.

Serves example/ with gunicorn, loads each scenario x target with wrk, and reports
the results as JSON, a Markdown table in BENCHMARKS.md and a PNG chart.
"""
