"""``python -m mlops_nb`` is the ``mlops-nb`` command."""

from mlops_nb.cli import main

if __name__ == "__main__":  # not when a worker process imports it
    main(prog_name="mlops-nb")
