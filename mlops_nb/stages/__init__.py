"""Notebook cells as tracked, cached pipeline stages."""
