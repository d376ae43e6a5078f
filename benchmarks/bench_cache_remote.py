"""A stage cache hit from the shared cache (S3) against one from the local folder (issue 21), for a 10 MB entry.

One entry: a 10 MB float64 array (its own .npy file) and a small object (objects.pkl), as a stage that
computes features leaves. Side by side, each the time of ``lookup`` + ``restore`` (digests checked, values
loaded), medians over ``--repeat`` hits:

- local: the entry in the local cache folder (today's hit);
- shared, no local copy: each hit downloads the entry from S3 (a fresh local folder every time: the first
  hit on a teammate's machine);
- shared, read-through copy: later hits of the same key on that machine, served from the copy the first
  one left;
- and, to show where a download's time goes, the bare transfer: s3fs reading the entry's objects from the
  same server, nothing checked or loaded.

S3 is moto's server mode, a real process on 127.0.0.1 (no network latency: a real bucket adds its round
trips). Goal: the shared hit within 2x the local one.

    python benchmarks/bench_cache_remote.py [--mb 10] [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/s3.py starts the S3 server

from tests.s3 import MotoServer

KEY = "b" * 64


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _hit(cache) -> float:
    t = time.perf_counter()
    cache.restore(cache.lookup(KEY))
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0, help="size of the entry's array in MB (default 10)")
    parser.add_argument("--repeat", type=int, default=15, help="hits measured per case (default 15)")
    args = parser.parse_args()

    import numpy as np

    from mlops_nb.stages.cache import Cache

    work = Path(tempfile.mkdtemp(prefix="bench-cache-remote-"))
    server = MotoServer(work / "moto")
    try:
        os.environ.update(server.env)
        server.bucket("bench")
        url = "s3://bench/cache"
        outputs = {"features": np.random.default_rng(0).random(int(args.mb * 2**20 / 8)), "meta": {"rows": 1}}
        fps = dict.fromkeys(outputs, "fp")
        Cache(work / "writer", 10**10, url).store(KEY, outputs, fps, {"stage": "features"})
        local = Cache(work / "local", 10**10)
        local.store(KEY, outputs, fps, {"stage": "features"})

        cases: dict[str, list[float]] = {
            "local": [],
            "shared, no local copy": [],
            "shared, read-through copy": [],
            "bare S3 transfer": [],
        }
        fs = server.filesystem()
        objects = [p for p in fs.find("bench/cache") if not p.endswith("manifest.json")]
        warm = Cache(work / "warm", 10**10, url)
        _hit(warm)  # the first hit leaves the copy
        _hit(local)
        for i in range(args.repeat):  # interleaved, so the machine's load falls on every case alike
            cases["local"].append(_hit(local))
            cold = work / f"cold-{i}"
            cases["shared, no local copy"].append(_hit(Cache(cold, 10**10, url)))
            shutil.rmtree(cold)
            cases["shared, read-through copy"].append(_hit(warm))
            t = time.perf_counter()
            fs.cat(objects)
            cases["bare S3 transfer"].append(time.perf_counter() - t)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    anchor = _median_ms(cases["local"])
    print(f"a {args.mb:g} MB entry, {args.repeat} hits each, load average {os.getloadavg()[0]:.1f}")
    print(f"{'case':<28}{'median ms':>10}{'vs local':>10}")
    for name, samples in cases.items():
        median = _median_ms(samples)
        print(f"{name:<28}{median:>10.1f}{median / anchor:>9.2f}x")
    print("goal: shared hit <= 2x the local one")


if __name__ == "__main__":
    main()
