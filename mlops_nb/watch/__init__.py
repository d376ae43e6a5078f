"""Watching a model in production: monitor its live data against its stored reference, record it, tell someone."""
