"""``python -m mlops_nb`` is the ``mlops-nb`` command."""

from mlops_nb.cli import run

if __name__ == "__main__":  # not when a worker process imports it
    run()
