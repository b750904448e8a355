"""Benchmarks of the kernel against its peers, run as ``python -m bench``.

Every figure is measured next to a peer in the same process and the same run
(ccxt, NautilusTrader, the standard library, or a plain function-call floor),
so ratios stay meaningful on shared, noisy machines. Each benchmark prints a
table and returns a JSON-ready dict; ``python -m bench --out FILE`` writes all
of them into one file. See ``docs/benchmarks.md``.
"""
