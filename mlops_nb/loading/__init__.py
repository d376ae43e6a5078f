"""Trusted model loading, below the parts that load models: ``serving/`` (export) and ``watch/`` (monitor).

``trust.py`` decides which types of a skops file may be loaded (trust comes from the person, never from the
model's files); ``model.py`` finds a model's skops file, converts a pickle only when asked, and loads it
with that trust.
"""
