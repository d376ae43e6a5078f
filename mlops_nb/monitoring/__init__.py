"""Data checks and drift against a model's reference profile."""
