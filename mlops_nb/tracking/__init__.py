"""Recording into MLflow: the only package that calls MLflow's tracking API (lazily, from one thread)."""
