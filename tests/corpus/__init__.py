"""A corpus of real notebooks that this project did not write, run plainly and tracked, and compared.

- ``sources``: the source distributions (downloaded once into a cache folder) and the notebooks made from
  them: scikit-learn's gallery scripts converted by ``gallery``, statsmodels' example notebooks as shipped.
- ``execute``: runs one notebook plainly (nbclient, a fresh kernel) and tracked (every code cell wrapped in
  ``%%track sNN``, through ``mlops-nb run``: cold, warm, and with one numeric literal of an early cell changed).
- ``compare``: what a cell shows (text outputs, number of figures), which cells differ between two plain runs
  (left out), and what differs between a plain and a tracked run, with the likely cause.
- ``run``: ``python -m tests.corpus.run [--only NAME] [--mode cold|warm|changed]`` prints the summary.
"""
