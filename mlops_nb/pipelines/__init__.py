"""The stage graph of a notebook, and running its stages apart (``mlops-nb graph``, ``run --stage``)."""
