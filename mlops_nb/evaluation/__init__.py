"""Evaluation of a fitted scikit-learn model on labelled data: pure computation, no MLflow.

``metrics`` scores a model under MLflow's default evaluator's metric names; ``resampling`` gives the same
metrics over many weightings of the rows at once (slices, bootstrap); ``slices``, ``cv``, ``explain`` and
``plots`` build on them; ``report`` puts the parts together into one result and ``html`` draws it.
"""
