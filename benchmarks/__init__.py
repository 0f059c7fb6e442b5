"""Benchmarks (not tests): `make bench`, i.e. `python -m benchmarks`. See __main__.py."""
