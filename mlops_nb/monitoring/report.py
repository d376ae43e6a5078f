"""The terminal report of a monitoring result: an aligned table of features, the verdict, the problems.

Colour (red drift, green none, yellow problems) only when asked, i.e. when the output is a terminal.
"""

from __future__ import annotations

from typing import Any

TEST_OF_KIND = {"numeric": "ks", "categorical": "chi2"}  # the p-value shown beside the deciding effect size
HEADERS = ("feature", "kind", "method", "score", "threshold", "p-value", "missing", "drift")
RED, GREEN, YELLOW, BOLD, RESET = "\033[31m", "\033[32m", "\033[33m", "\033[1m", "\033[0m"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.4g}"


def rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row of strings per feature, in the table's column order."""
    out = []
    for name, feature in result["features"].items():
        method = feature.get("method")
        score = feature["scores"].get(method) if method else None
        test = feature["scores"].get(TEST_OF_KIND.get(feature["kind"], ""))
        drift = {True: "DRIFT", False: "ok", None: "n/a"}[feature.get("drift")]
        out.append(
            (
                name,
                feature["kind"],
                (method or "-") + (f" (base {score['base']:.3g})" if score and "base" in score else ""),
                _num(score["statistic"]) if score else "-",
                _num(score["threshold"]) if score else "-",
                _num(test["p_value"]) if test else "-",
                f"{feature['missing_rate']:.1%}",
                drift,
            )
        )
    return out


def text(result: dict[str, Any], color: bool = False) -> str:
    """The report as text; ``color`` adds ANSI colours."""

    def paint(s: str, code: str) -> str:
        return f"{code}{s}{RESET}" if color else s

    table = [HEADERS, *rows(result)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADERS))]
    lines = []
    for i, row in enumerate(table):
        cells = [cell.ljust(w) if j < 3 else cell.rjust(w) for j, (cell, w) in enumerate(zip(row, widths, strict=True))]
        line = "  ".join(cells).rstrip()
        if i == 0:
            line = paint(line, BOLD)
        elif row[-1] == "DRIFT":
            line = paint(line, RED)
        lines.append(line)
    decided = sum(1 for f in result["features"].values() if f.get("drift") is not None)
    drifted = sum(1 for f in result["features"].values() if f.get("drift"))
    verdict = paint("Dataset drift", RED + BOLD) if result["dataset_drift"] else paint("No dataset drift", GREEN + BOLD)
    lines.append("")
    lines.append(
        f"{verdict}: {drifted} of {decided} features drifted ({result['drift_share']:.0%}); "
        f"{result['rows']:,} rows, preset {result['preset']}."
    )
    problems = result["validation"]["problems"]
    if problems:
        lines.append(paint(f"{len(problems)} data problem{'s' if len(problems) > 1 else ''}:", YELLOW + BOLD))
        width = max(len(p["column"]) for p in problems)
        kind = max(len(p["check"]) for p in problems)
        lines.extend(f"  {p['column'].ljust(width)}  {p['check'].ljust(kind)}  {p['detail']}" for p in problems)
    else:
        lines.append(paint("Data checks passed.", GREEN))
    lines.extend(paint(f"Note: {warning}", YELLOW) for warning in result.get("warnings", []))
    return "\n".join(lines)
