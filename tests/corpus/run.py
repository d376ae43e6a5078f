"""Run corpus notebooks plainly and tracked, compare them, print what differs.

    python -m tests.corpus.run                        # the sample of the test suite, every mode
    python -m tests.corpus.run --all                  # every notebook that runs offline in ~20 s
    python -m tests.corpus.run --only sklearn/cluster/plot_kmeans_assumptions --mode warm

Per notebook: two plain runs (cells that differ between them are left out), then tracked through
``mlops-nb run`` in one project: cold, warm (a fresh kernel, the same cache), and changed (one numeric
literal of an early cell changed, against the plain run of the changed notebook). Prints per notebook and
mode whether the tracked run shows what the plain run shows, the cells that differ (plain vs tracked) with
the likely cause, the hit rate and the reasons stages missed the cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import nbformat

from tests.corpus import sources
from tests.corpus.compare import VERSION as compare_version
from tests.corpus.compare import Comparison, View, compare, stable, views
from tests.corpus.execute import Change, StageOutcome, changes, plain, stages, tracked

MODES = ("cold", "warm", "changed")
FRESH_ENV = "MLOPS_NB_CORPUS_FRESH"  # 1: run the plain notebooks again instead of using what the cache folder remembers
MAX_SECONDS = 20.0  # CPU seconds: a notebook whose plain run's kernel needs more is left out of the corpus
# The fixed sample: fast notebooks (3-5 s of CPU plainly) of both sources, several styles: prints, estimator
# reprs and HTML, figures, pandas tables, a seeded RandomState passed around. Four of them run in the normal
# test suite, all of them with the whole corpus.
SAMPLE = (  # in the README's test command
    "sklearn/cluster/plot_dbscan",
    "sklearn/cross_decomposition/plot_pcr_vs_pls",
    "sklearn/linear_model/plot_nnls",
    "sklearn/miscellaneous/plot_estimator_representation",
)
SAMPLE_MORE = (  # with the whole corpus (--corpus, MLOPS_NB_CORPUS=1: CI's corpus step), as strictly
    "sklearn/miscellaneous/plot_isotonic_regression",
    "sklearn/mixture/plot_gmm_pdf",
    "sklearn/svm/plot_separating_hyperplane",
    "sklearn/tree/plot_unveil_tree_structure",
    "statsmodels/ols",
    "statsmodels/quantile_regression",
)


@dataclass
class ModeResult:
    """One tracked run of a notebook, compared with its plain run."""

    mode: str
    seconds: float
    error: str
    comparison: Comparison | None
    stages: dict[int, StageOutcome]
    change: Change | None = None

    @property
    def equal(self) -> bool:
        return not self.error and self.comparison is not None and self.comparison.equal

    @property
    def hits(self) -> int:
        return sum(s.hit for s in self.stages.values())


@dataclass
class Result:
    name: str
    plain_seconds: float
    plain_error: str = ""
    left_out: list[int] = field(default_factory=list)
    modes: dict[str, ModeResult] = field(default_factory=dict)


@dataclass
class Plain:
    """What the plain runs of a notebook show: each cell's view (of the first run), the cells that differed
    between the runs, and the first run's time and error."""

    views: dict[int, View]
    left_out: list[int]
    seconds: float
    error: str = ""


def plain_runs(nb: nbformat.NotebookNode, workdir: Path, runs: int = 2) -> Plain:
    """``runs`` plain runs of ``nb`` in fresh kernels, remembered in the cache folder for this environment (the
    same notebook and package versions show the same), unless MLOPS_NB_CORPUS_FRESH=1."""
    text = nbformat.writes(nb)
    key = hashlib.sha256(f"{_environment_key()} {compare_version} {runs} {text}".encode()).hexdigest()[:24]
    path = sources.cache_dir() / "plain" / f"{key}.json"
    if path.is_file() and os.environ.get(FRESH_ENV) != "1":
        known = json.loads(path.read_text())
        found = {int(i): View(**v) for i, v in known["views"].items()}
        return Plain(found, known["left_out"], known["seconds"], known["error"])
    first = plain(nb, workdir / "plain-1")
    result = Plain(views(first.nb), [], first.seconds, first.error)
    for n in range(2, runs + 1):
        if result.error:
            break
        again = plain(nb, workdir / f"plain-{n}")
        if again.error:
            result.error = f"plain run {n}: {again.error}"
            break
        _, differ = stable(result.views, views(again.nb))
        result.left_out = sorted({*result.left_out, *differ})
    path.parent.mkdir(parents=True, exist_ok=True)
    known = {"views": {i: asdict(v) for i, v in result.views.items()}, "left_out": result.left_out}
    path.write_text(json.dumps({**known, "seconds": result.seconds, "error": result.error}))
    return result


def check(notebook: sources.Notebook, workdir: Path, modes: tuple[str, ...] = MODES) -> Result:
    """Plain twice, then tracked cold, warm and changed (as far as ``modes`` needs), each compared."""
    nb = nbformat.read(notebook.path, as_version=4)
    stem = notebook.name.rsplit("/", 1)[-1]
    reference = plain_runs(nb, workdir)
    result = Result(notebook.name, reference.seconds, reference.error, reference.left_out)
    if reference.error:
        return result
    cells = [i for i in reference.views if i not in reference.left_out]
    project = workdir / "tracked"
    last = max(MODES.index(m) for m in modes)
    for mode in MODES[: last + 1]:
        change = None
        want = reference.views
        run_nb = nb
        if mode == "changed":
            for variant, candidate in changes(nb):
                changed = plain_runs(variant, workdir / f"changed-{candidate.cell}-{candidate.line}", runs=1)
                if not changed.error:
                    run_nb, change, want = variant, candidate, changed.views
                    break
            if change is None:
                result.modes[mode] = ModeResult(mode, 0.0, "no numeric literal to change in an early cell", None, {})
                continue
        run = tracked(run_nb, project, stem)
        outcomes = stages(project, run.run_id)
        if mode != "cold":
            _name_changed_inputs(outcomes, result.modes["cold"].stages)
        hits = {i: s.hit for i, s in outcomes.items()}
        comparison = compare(want, views(run.nb), cells, hits, result.left_out)
        result.modes[mode] = ModeResult(mode, run.seconds, run.error, comparison, outcomes, change)
    return result


def _name_changed_inputs(outcomes: dict[int, StageOutcome], cold: dict[int, StageOutcome]) -> None:
    """Add to each miss for want of an entry which of its inputs differ from the cold run's (a stage that
    changed them in place upstream, or state that only a run leaves), or why the cold run stored none."""
    for cell, outcome in outcomes.items():
        before = cold.get(cell)
        if outcome.hit or before is None or not outcome.miss_reason.startswith("no cached result"):
            continue
        differ = sorted(n for n, fp in outcome.inputs.items() if before.inputs.get(n) != fp)
        if differ:
            outcome.miss_reason += f" (inputs other than in the cold run: {', '.join(differ)})"
        elif before.skipped:
            outcome.miss_reason += f" (the cold run stored none: {before.skipped})"


# --- the survey: which notebooks run offline, and how fast -----------------------------------------------
def _environment_key() -> str:
    versions = [f"{d} {metadata.version(d)}" for d in ("scikit-learn", "statsmodels", "numpy", "pandas", "matplotlib")]
    return hashlib.sha256(repr((sys.version, versions)).encode()).hexdigest()[:16]


def survey(notebooks: list[sources.Notebook], progress=print) -> dict[str, dict]:
    """One plain run of each notebook (remembered in the cache folder): seconds, the kernel's CPU seconds
    (what decides, as the machine may be busy) and error."""
    path = sources.cache_dir() / f"survey-{_environment_key()}-2.json"
    known = json.loads(path.read_text()) if path.is_file() else {}
    for i, notebook in enumerate(notebooks, 1):
        digest = hashlib.sha256(notebook.path.read_bytes()).hexdigest()[:16]
        if known.get(notebook.name, {}).get("sha") == digest:
            continue
        with tempfile.TemporaryDirectory(prefix="corpus-survey-") as folder:
            run = plain(nbformat.read(notebook.path, as_version=4), Path(folder), cell_timeout=MAX_SECONDS * 3)
        known[notebook.name] = {
            "sha": digest,
            "seconds": round(run.seconds, 2),
            "cpu_seconds": round(run.cpu_seconds, 2),
            "error": run.error,
        }
        progress(
            f"[{i}/{len(notebooks)}] {notebook.name}: {run.seconds:.1f} s ({run.cpu_seconds:.1f} s CPU) {run.error}"
        )
        path.write_text(json.dumps(known, indent=1, sort_keys=True))
    return known


def corpus(progress=print) -> list[sources.Notebook]:
    """Every notebook that runs offline without error in under MAX_SECONDS."""
    notebooks = sources.notebooks()
    known = survey(notebooks, progress)
    return [n for n in notebooks if not known[n.name]["error"] and known[n.name]["cpu_seconds"] <= MAX_SECONDS]


def sample(more: bool = False) -> list[sources.Notebook]:
    """The notebooks of ``SAMPLE`` (and of ``SAMPLE_MORE`` with ``more``)."""
    by_name = {n.name: n for n in sources.notebooks()}
    return [by_name[name] for name in SAMPLE + (SAMPLE_MORE if more else ())]


# --- the report -----------------------------------------------------------------------------------------
def _short(value: object, width: int = 70) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe(result: Result) -> str:
    """Per mode: equal or not, the differing cells (plain vs tracked) and their cause, hits and miss reasons."""
    lines = [f"== {result.name} (plain {result.plain_seconds:.1f} s)"]
    if result.plain_error:
        return "\n".join([*lines, f"   plain run failed: {result.plain_error}"])
    if result.left_out:
        lines.append(f"   left out (differ between two plain runs): cells {result.left_out}")
    for mode in result.modes.values():
        state = "EQUAL" if mode.equal else "DIFFERS"
        change = mode.change
        extra = f", cell {change.cell} line {change.line}: {change.old} -> {change.new}" if change else ""
        lines.append(
            f"   {mode.mode}: {state} ({mode.seconds:.1f} s, {mode.hits}/{len(mode.stages)} stages from the cache"
            f"{extra})"
        )
        if mode.error:
            lines.append(f"      error: {mode.error}")
        for d in mode.comparison.differences if mode.comparison else []:
            served = {True: "hit", False: "ran", None: "no stage"}[d.hit]
            lines.append(f"      cell {d.cell} ({d.stage}, {served}): {d.cause}")
            for name, (want, got) in d.fields.items():
                lines.append(f"         {name}: plain {_short(want)} | tracked {_short(got)}")
        reasons = Counter(s.miss_reason for s in mode.stages.values() if not s.hit)
        for reason, count in reasons.most_common():
            lines.append(f"      missed x{count}: {reason[:150]}")
    return "\n".join(lines)


def table(results: list[Result]) -> str:
    """One line per notebook: each mode equal or not, the causes of its differences, its hit rate."""
    lines = [f"{'notebook':55} {'cold':8} {'warm':8} {'changed':8} causes"]
    totals: Counter[str] = Counter()
    for result in results:
        if result.plain_error:
            lines.append(f"{result.name:55} plain run failed: {result.plain_error[:60]}")
            continue
        cells, causes = [], Counter()
        for mode in MODES:
            m = result.modes.get(mode)
            if m is None:
                cells.append("-")
                continue
            totals[f"{mode} equal"] += m.equal
            totals[f"{mode} run"] += 1
            totals[f"{mode} hits"] += m.hits
            totals[f"{mode} stages"] += len(m.stages)
            cells.append(("ok" if m.equal else "DIFF") + (f" {m.hits}/{len(m.stages)}" if mode != "cold" else ""))
            causes.update(f"{mode}: {d.cause}" for d in (m.comparison.differences if m.comparison else []))
            if m.error:
                causes[f"{mode}: {m.error[:60]}"] += 1
        lines.append(
            f"{result.name:55} {cells[0]:8} {cells[1]:8} {cells[2]:8} "
            + "; ".join(f"{c} x{n}" for c, n in causes.most_common())
        )
    for mode in MODES:
        if totals[f"{mode} run"]:
            lines.append(
                f"{mode}: {totals[f'{mode} equal']}/{totals[f'{mode} run']} notebooks equal, "
                f"{totals[f'{mode} hits']}/{totals[f'{mode} stages']} stages from the cache"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.corpus.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="a notebook (repeatable; default: the sample)")
    parser.add_argument("--all", action="store_true", help="every notebook that runs offline in ~20 s")
    parser.add_argument("--mode", choices=MODES, action="append", help="compare only this mode (repeatable)")
    parser.add_argument("--limit", type=int, help="at most this many notebooks")
    parser.add_argument("--survey", action="store_true", help="only run them plainly once: seconds, CPU, errors")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args(argv)

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.only:
        by_name = {n.name: n for n in sources.notebooks()}
        unknown = [n for n in args.only if n not in by_name]
        if unknown:
            parser.error(f"not in the corpus: {', '.join(unknown)} (names look like {sorted(by_name)[0]})")
        chosen = [by_name[n] for n in args.only]
    else:
        chosen = corpus(progress) if args.all else sample(more=True)
    chosen = chosen[: args.limit] if args.limit else chosen
    if args.survey:
        known = survey(chosen, progress)
        for n in chosen:
            k = known[n.name]
            print(f"{n.name:60} {k['seconds']:6.1f} s {k['cpu_seconds']:6.1f} s CPU {k['error'][:80]}")
        return 0
    modes = tuple(args.mode or MODES)
    results = []
    with tempfile.TemporaryDirectory(prefix="corpus-") as folder:
        root = args.workdir or Path(folder)
        for i, notebook in enumerate(chosen, 1):
            result = check(notebook, root / notebook.name.replace("/", "__"), modes)
            for mode in [m for m in result.modes if m not in modes]:
                del result.modes[mode]
            results.append(result)
            progress(f"[{i}/{len(chosen)}]\n{describe(result)}")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1, default=str))
    return 0 if all(m.equal for r in results for m in r.modes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
