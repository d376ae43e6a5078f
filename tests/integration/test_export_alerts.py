"""The Prometheus alerting rules of the serving package: valid, over metrics the package really exposes, and
firing on the situations they name (``promtool test rules``, when promtool is installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import python
from tests.integration.test_export import export, train

RULES = {
    "ServingErrorRate",
    "ServingRequestsRefused",
    "ServingLatencyP99",
    "ServingInputProblems",
    "ServingPredictionShift",
}

# Run in the package: the app in-process, requests that exercise every metric (good rows, out-of-range
# numbers, 40 unknown categories, unknown fields, a bad body, an unknown path), then /metrics parsed.
EXERCISE = """
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from app.config import Settings
from app.main import create_app
from app.schema import COLUMNS

example = json.loads(Path("tests/example.json").read_text())
records = [dict(zip(example["columns"], row)) for row in example["data"]]
numeric = [c.name for c in COLUMNS if c.type in ("double", "float", "long", "integer")]
text = [c.name for c in COLUMNS if c.type == "string"]
with TestClient(create_app(Settings(log_dir=Path(sys.argv[1])))) as client:
    for i in range(40):
        odd = dict(records[0])
        for name in numeric:
            odd[name] = 1_000_000 + i
        for name in text:
            odd[name] = f"never-seen-{i}"
        assert client.post("/invocations", json={"dataframe_records": [*records, odd]}).status_code == 200
        assert client.post("/invocations", json={"dataframe_records": [{**odd, f"extra_{i}": 1}]}).status_code == 400
    client.post("/invocations", content=b"{not json")
    client.get("/no-such-path")
    body = client.get("/metrics").text
samples = [(s.name, s.labels) for family in text_string_to_metric_families(body) for s in family.samples]
print(json.dumps({"samples": samples, "columns": [c.name for c in COLUMNS]}))
"""


def _exported(project: Path, kind: str) -> Path:
    train(project, kind)
    result = export("models:/demo@champion", "--out", "pkg")
    assert result.exit_code == 0, result.output
    return project / "pkg"


def _exposed(pkg: Path) -> tuple[list[tuple[str, dict[str, str]]], list[str]]:
    out = python(EXERCISE, cwd=pkg, args=(str(pkg.parent / "logs"),), env={"PYTHONPATH": str(pkg)})
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return [(name, labels) for name, labels in data["samples"]], data["columns"]


def _rules(pkg: Path) -> list[dict]:
    doc = yaml.safe_load((pkg / "prometheus" / "alerts.yml").read_text())
    (group,) = doc["groups"]
    assert group["name"] == "demo-serving"
    for rule in group["rules"]:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"].startswith("demo: ") and "{{ $" in rule["annotations"]["description"]
    assert {r["alert"] for r in group["rules"]} == RULES
    return group["rules"]


def _promtool() -> str | None:
    return shutil.which("promtool")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["frame", "array"], ids=["classifier", "regressor"])
def test_alert_rules_name_only_metrics_and_labels_the_package_exposes(project: Path, kind: str) -> None:
    pkg = _exported(project, kind)
    rules = _rules(pkg)
    samples, columns = _exposed(pkg)
    names = {name for name, _ in samples}
    labels_of: dict[str, set[str]] = {}
    for name, labels in samples:
        labels_of.setdefault(name, set()).update(labels)
    for rule in rules:
        used = set(re.findall(r"\b(serving_[a-z_]+)\b", rule["expr"]))
        assert used and used <= names, (rule["alert"], used - names)
        grouped = {g.strip() for by in re.findall(r"(?:by|ignoring) \(([^)]*)\)", rule["expr"]) for g in by.split(",")}
        available = set().union(*(labels_of[n] for n in used)) | {"job"}  # job: Prometheus adds it at scrape
        assert grouped <= available, (rule["alert"], grouped - available)

    # Bounded label sets: input flags only for the signature's features, at most 2 series per feature,
    # whatever values and field names the requests carried; predicted classes only the model's.
    flags = [labels for name, labels in samples if name == "serving_input_flags_total"]
    assert flags and {f["column"] for f in flags} <= set(columns)
    for column in columns:
        assert len([f for f in flags if f["column"] == column]) <= 2
    assert {f["flag"] for f in flags} <= {"unknown_category", "out_of_range"}
    if kind == "frame":
        assert {f["flag"] for f in flags} == {"unknown_category", "out_of_range"}
        assert {labels["label"] for name, labels in samples if name == "serving_predictions_total"} == {"no", "yes"}
    statuses = {labels["status"] for name, labels in samples if name == "serving_requests_total"}
    assert {"200", "400", "404"} <= statuses

    promtool = _promtool()
    if promtool is None:
        pytest.skip("promtool is not installed: the rules were checked as YAML and against /metrics only")
    checked = subprocess.run([promtool, "check", "rules", "prometheus/alerts.yml"], cwd=pkg, capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert b"SUCCESS: 5 rules found" in checked.stdout


# promtool's unit tests of the classifier's rules: series that should fire each alert, and series that should not.
PROMTOOL_TESTS = """
rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'serving_requests_total{job="svc", endpoint="/invocations", status="200"}'
        values: '0+100x40'
      - series: 'serving_requests_total{job="svc", endpoint="/invocations", status="500"}'
        values: '0+5x40'
      - series: 'serving_requests_total{job="calm", endpoint="/invocations", status="200"}'
        values: '0+100x40'
      - series: 'serving_rows_total{job="svc"}'
        values: '0+100x40'
      - series: 'serving_input_flags_total{job="svc", column="color", flag="unknown_category"}'
        values: '0+10x40'
      - series: 'serving_input_flags_total{job="svc", column="b", flag="out_of_range"}'
        values: '0+1x40'
      - series: 'serving_request_duration_seconds_bucket{job="svc", endpoint="/invocations", le="0.5"}'
        values: '0+90x40'
      - series: 'serving_request_duration_seconds_bucket{job="svc", endpoint="/invocations", le="1"}'
        values: '0+105x40'
      - series: 'serving_request_duration_seconds_bucket{job="svc", endpoint="/invocations", le="+Inf"}'
        values: '0+105x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: ServingErrorRate
        exp_alerts:
          - exp_labels: {severity: critical, job: svc}
            exp_annotations:
              summary: "demo: more than 1% of requests fail with 5xx"
              description: "4.762% of the requests to svc failed with a 5xx status over the last 5 minutes."
      - eval_time: 30m
        alertname: ServingInputProblems
        exp_alerts:
          - exp_labels: {severity: warning, job: svc, column: color, flag: unknown_category}
            exp_annotations:
              summary: "demo: inputs unlike the training data"
              description: "Feature color: unknown_category in 10% of the rows scored by svc over 15 minutes.
                Run mlops-nb monitor on the logged inputs."
      - eval_time: 30m
        alertname: ServingLatencyP99
        exp_alerts:
          - exp_labels: {severity: warning, job: svc}
            exp_annotations:
              summary: "demo: p99 latency of scoring above 0.5 s"
              description: "The 99th percentile of /invocations and /predict on svc is 965ms."
      - eval_time: 30m
        alertname: ServingRequestsRefused
        exp_alerts: []
  - interval: 15m  # a week of 50/50 predictions, then 5 hours of 90/10 (job svc); job calm stays 50/50
    input_series:
      - series: 'serving_predictions_total{job="svc", label="yes"}'
        values: '0+12.5x672 8445+45x20'
      - series: 'serving_predictions_total{job="svc", label="no"}'
        values: '0+12.5x672 8405+5x20'
      - series: 'serving_predictions_total{job="calm", label="yes"}'
        values: '0+25x692'
      - series: 'serving_predictions_total{job="calm", label="no"}'
        values: '0+25x692'
    alert_rule_test:
      - eval_time: 172h
        alertname: ServingPredictionShift
        exp_alerts:
          - exp_labels: {severity: warning, job: svc}
            exp_annotations:
              summary: "demo: the predicted classes shifted"
              description: "The class shares predicted by svc in the last hour differ from the week before
                by a total variation distance of 0.39. Check the inputs for drift: mlops-nb monitor."
      - eval_time: 168h
        alertname: ServingPredictionShift
        exp_alerts: []
"""


@pytest.mark.slow
def test_the_classifier_rules_fire_on_what_they_name_and_not_otherwise(project: Path) -> None:
    promtool = _promtool()
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    pkg = _exported(project, "frame")
    (pkg / "prometheus" / "alerts_test.yml").write_text(textwrap.dedent(PROMTOOL_TESTS))
    tested = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=pkg / "prometheus", capture_output=True)
    assert tested.returncode == 0, (tested.stdout + tested.stderr).decode()[-4000:]
