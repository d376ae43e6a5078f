"""What keeping and replaying a stage's outputs costs, and what finding mutated inputs costs (issue 17).

1. Capture: a stage that prints a line, and one that shows a figure (a 640x480 PNG as the inline backend
   sends it), with the capture on vs the same work with it off, in one real IPython shell. Medians;
   goals <= 1 ms per printed line, <= 5 ms per figure.
2. The mutation check: re-fingerprinting a 1M x 20 DataFrame input after a stage (the price of seeing
   ``df["x"] = ...``), side by side with the fingerprint every stage already takes before it runs.
3. The size of a cache entry's outputs.json for those stages.

    python benchmarks/bench_outputs.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def capture(repeat: int) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import Image, display

    from mlops_nb.stages.outputs import Capture

    shell = InteractiveShell.instance()
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(range(100))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    png = Image(buffer.getvalue())

    def line() -> None:
        print("Estimated number of clusters: 3")

    def figure() -> None:
        display(png)

    for name, work, goal in (("print a line", line, 1.0), ("show a figure", figure, 5.0)):
        plain, captured, size = [], [], 0
        with contextlib.redirect_stdout(io.StringIO()):
            for _ in range(repeat):
                t = time.perf_counter()
                work()
                plain.append(time.perf_counter() - t)
                t = time.perf_counter()
                cap = Capture(shell).start()
                work()
                cap.end_cell()
                kept = cap.stop()
                captured.append(time.perf_counter() - t)
            size = len(json.dumps(kept.to_json()))
        added = _median_ms(captured) - _median_ms(plain)
        print(
            f"{name:14s}: plain {_median_ms(plain):.3f} ms, captured {_median_ms(captured):.3f} ms, "
            f"added {added:.3f} ms (goal <= {goal} ms); outputs.json {size / 1024:.1f} KiB"
        )


def mutation(repeat: int) -> None:
    import numpy as np
    import pandas as pd

    from mlops_nb.stages.fingerprint import fingerprints

    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(1_000_000, 20)), columns=[f"f{i}" for i in range(20)])
    before, after = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        fingerprints({"df": frame})  # the key's fingerprint, before the stage
        before.append(time.perf_counter() - t)
        t = time.perf_counter()
        fingerprints({"df": frame})  # the mutation check, after it
        after.append(time.perf_counter() - t)
    print(
        f"1M x 20 frame: key fingerprint {_median_ms(before):.1f} ms, mutation check {_median_ms(after):.1f} ms "
        f"({_median_ms(after) / _median_ms(before):.2f}x the fingerprint a stage already takes)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    capture(args.repeat)
    mutation(max(3, args.repeat // 40))


if __name__ == "__main__":
    main()
