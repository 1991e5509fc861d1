"""Ratio benchmarks of tfemergent kernels (run as `python -m benchmarks.bench_<name>`)."""
