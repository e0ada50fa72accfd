"""Microbenchmarks of the squeezeprompt CPU kernels against torch's own kernels.

``python -m bench.report`` runs every case and writes ``bench/results/``;
``pytest bench/bench_kernels.py`` runs the same cases under pytest-benchmark.
"""
