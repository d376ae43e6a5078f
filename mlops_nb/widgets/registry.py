"""The Registry tab of ``%mlops panel``, for front ends without the JupyterLab extension: the registered
models with their versions, aliases and promotion evidence, and a form that promotes a run's model behind
the gates of ``mlops-nb promote`` (a refused promotion registers nothing and says which gate failed)."""

from __future__ import annotations

import html
from typing import Any

from mlops_nb.exceptions import MlopsNbError
from mlops_nb.tracking.records import ModelDetail


def versions_table(model: ModelDetail) -> str:
    """The versions of a registered model as an HTML table, newest first (every value escaped)."""
    by_version: dict[str, list[str]] = {}
    for alias, version in model["aliases"].items():
        by_version.setdefault(version, []).append(alias)
    rows = []
    for v in model["versions"]:
        evidence = v["evidence"]
        source = evidence.get("mlops_nb.source_run") or v["run_id"] or ""
        gates = evidence.get("mlops_nb.promotion.gates", "")
        cells = [
            v["version"],
            ", ".join("@" + a for a in sorted(by_version.get(v["version"], []))),
            source[:8],
            evidence.get("mlops_nb.promotion.user", ""),
            evidence.get("mlops_nb.promotion.time", ""),
            _gates(gates),
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("version", "aliases", "source run", "promoted by", "when", "gates"))
    if not rows:
        return f"<p>{html.escape(model['name'])} has no versions yet.</p>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _gates(recorded: str) -> str:
    import json

    try:
        gates = json.loads(recorded) if recorded else []
        return "; ".join(("✓ " if g["ok"] else "✗ ") + g["name"] for g in gates)
    except (ValueError, TypeError, KeyError):
        return ""


def promotion_message(promotion: Any) -> str:
    """What a promotion did, as HTML: every gate with its message, then the outcome."""
    lines = [f"{'✓' if g.ok else '✗'} {html.escape(g.message)}" for g in promotion.gates]
    name, alias = html.escape(promotion.name), html.escape(promotion.alias)
    if promotion.promoted:
        lines.append(f"<b>Promoted</b>: {name}@{alias} → version {html.escape(str(promotion.version))}")
    else:
        now = html.escape(str(promotion.alias_version or "no version"))
        lines.append(f"<b>Refused</b>: {name}@{alias} did not move (it points to {now}); nothing was registered.")
    return "<br>".join(lines)


class RegistryPanel:
    """The registered models (a dropdown and its versions) and the promote form."""

    def __init__(self) -> None:
        import ipywidgets

        self.models = ipywidgets.Dropdown(description="Model")
        self.versions = ipywidgets.HTML()
        refresh = ipywidgets.Button(description="Refresh", icon="refresh")
        self.run_id = ipywidgets.Text(description="Run id", placeholder="a job or notebook run (mlops-nb runs)")
        self.name = ipywidgets.Text(description="Name", placeholder="registered model, e.g. churn")
        self.alias = ipywidgets.Text(description="Alias", value="champion")
        self.require = ipywidgets.Text(description="Require", placeholder="accuracy >= 0.9, f1_macro > 0.8")
        self.must_beat = ipywidgets.Text(description="Must beat", placeholder="alias, e.g. champion (optional)")
        self.metric = ipywidgets.Text(description="Metric", placeholder="with Must beat, e.g. accuracy")
        self.promote_button = ipywidgets.Button(description="Promote", button_style="primary")
        self.outcome = ipywidgets.HTML()
        refresh.on_click(lambda _: self.refresh())
        self.models.observe(lambda change: self.show(change["new"]), names="value")
        self.promote_button.on_click(lambda _: self.promote())
        form = ipywidgets.VBox(
            [self.run_id, self.name, self.alias, self.require, self.must_beat, self.metric, self.promote_button]
        )
        self.widget = ipywidgets.VBox([ipywidgets.HBox([self.models, refresh]), self.versions, form, self.outcome])

    def refresh(self) -> None:
        from mlops_nb.tracking.reading import list_models

        names = [m["name"] for m in list_models()["models"]]
        current = self.models.value
        self.models.options = names
        if current in names:
            self.show(current)
        elif not names:
            self.versions.value = "<p>No registered models yet: promote a run's model with the form below.</p>"

    def show(self, name: str | None) -> None:
        from mlops_nb.tracking.reading import model_detail

        if not name:
            return
        self.name.value = self.name.value or name
        self.versions.value = versions_table(model_detail(name))

    def promote(self) -> None:
        from mlops_nb.registry.promote import promote

        must_beat = self.must_beat.value.strip() or None
        try:
            promotion = promote(
                self.run_id.value.strip(),
                self.name.value.strip(),
                alias=self.alias.value.strip() or "champion",
                require=[r.strip() for r in self.require.value.split(",") if r.strip()],
                must_beat=must_beat,
                metric=(self.metric.value.strip() or None) if must_beat else None,
            )
        except MlopsNbError as e:
            self.outcome.value = f"<b>Not promoted</b>: {html.escape(str(e))}"
            return
        self.outcome.value = promotion_message(promotion)
        self.refresh()
        self.models.value = promotion.name if promotion.name in self.models.options else self.models.value
