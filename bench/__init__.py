"""Benchmarks of the real pipeline on this machine: ``python -m bench full|quick|chaos|NAME``.

Not part of ``make test``; see bench/README.md and docs/benchmarks.md.
"""
