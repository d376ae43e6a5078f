"""The stage graph of a notebook and running its stages apart (``mlops-nb graph``, ``run --stage``).

For an exporter: ``build_graph(path)`` gives a ``Graph``; ``graph.names`` are its stages in notebook order (a
task each), ``graph.dependencies(name)`` the stages a task waits for (cells outside stages run inside every
task that needs them), ``graph.parameters`` the notebook's parameters with their defaults, and
``graph.problems`` what refuses running the stages apart. Each task runs ``mlops-nb run NOTEBOOK --stage NAME``.
"""
