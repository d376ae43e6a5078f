import { Widget } from '@lumino/widgets';
import { append, clear, empty, errorBox, h, num } from './dom';
import { query, requestAPI } from './handler';

/** A 95% interval: `{low, high}`. */
export interface IInterval {
  low: number;
  high: number;
}

/** mlops_nb/evaluation/summary.py `Headline`: one evaluation a run (or one of its stages) logged. */
export interface IEvaluationHeadline {
  name: string;
  run_id: string;
  stage: string | null;
  report: string;
  model: string | null;
  task: string | null;
  rows: number | null;
  primary: string | null;
  metrics: Record<string, number>;
  intervals: Record<string, IInterval>;
  cv: Record<string, IInterval & { mean: number }> | null;
  worst_slice: Record<string, number>;
  worst_slices: { slice: string; rows: number; metrics: Record<string, number>; intervals: Record<string, IInterval> }[];
  baseline: { model: string; metrics: Record<string, number>; deltas: Record<string, IInterval & { delta: number }> } | null;
  skipped: { part: string; reason: string }[];
  error: string | null;
}

/** `GET /mlops-nb/api/runs/RUN_ID/evaluations`. */
export interface IRunEvaluations {
  run_id: string;
  evaluations: IEvaluationHeadline[];
}

/** `GET /mlops-nb/api/runs/RUN_ID/report?name=NAME`. */
export interface IEvaluationReport {
  run_id: string;
  name: string;
  html: string;
}

/** Counts have no interval and say little in a headline. */
const COUNTS = new Set(['example_count', 'true_negatives', 'false_positives', 'false_negatives', 'true_positives', 'sum_on_target']);

function interval(i: IInterval | undefined | null): string {
  return i ? `[${num(i.low)}, ${num(i.high)}]` : '';
}

/**
 * The evaluations of one run (mnb.evaluate in its stages, or `mlops-nb evaluate`), in the main area: each
 * one's headline (metrics with intervals, the baseline's paired deltas, the worst slices, what was skipped)
 * and its report (evaluation/report.html) in a sandboxed frame: no script runs in it, it fetches nothing.
 */
export class EvaluationPanel extends Widget {
  constructor() {
    super();
    this.id = 'mlops-nb-evaluation';
    this.addClass('mlops-nb-evaluation-panel');
    this.title.label = 'MLOps: evaluation';
    this.title.closable = true;
  }

  /** Show the evaluations of run `runId`. */
  async showRun(runId: string): Promise<void> {
    clear(this.node);
    this.title.label = `Evaluation ${runId.slice(0, 8)}`;
    const body = h('div', { className: 'mlops-nb-evaluation', 'aria-live': 'polite', 'data-run-id': runId }, h('h2', {}, `Evaluations of run ${runId.slice(0, 8)}`));
    this.node.appendChild(body);
    let found: IRunEvaluations;
    try {
      found = await requestAPI<IRunEvaluations>(`runs/${encodeURIComponent(runId)}/evaluations`);
    } catch (error) {
      body.appendChild(errorBox(error));
      return;
    }
    if (found.evaluations.length === 0) {
      body.appendChild(empty('This run logged no evaluation.', 'Evaluate its model in a stage: mnb.evaluate(model, X_test, y_test).'));
      return;
    }
    const report = h('div', { className: 'mlops-nb-report-host' });
    for (const evaluation of found.evaluations) {
      body.appendChild(headline(evaluation, () => void this._report(report, evaluation)));
    }
    body.appendChild(report);
    const first = found.evaluations.find(e => !e.error);
    if (first) {
      await this._report(report, first);
    }
  }

  private async _report(host: HTMLElement, evaluation: IEvaluationHeadline): Promise<void> {
    clear(host);
    host.appendChild(h('span', { className: 'mlops-nb-dim' }, 'loading the report…'));
    try {
      const found = await requestAPI<IEvaluationReport>(`runs/${encodeURIComponent(evaluation.run_id)}/report${query({ name: evaluation.name })}`);
      // sandbox="" : a unique origin, no scripts, no forms: the report's text comes from the data
      const frame = h('iframe', { className: 'mlops-nb-report', sandbox: '', title: `Report of evaluation ${evaluation.name}`, 'data-name': evaluation.name });
      frame.srcdoc = found.html;
      clear(host);
      append(host, h('h3', {}, `Report: ${evaluation.report}`, evaluation.stage ? ` (stage ${evaluation.stage})` : ''), frame);
    } catch (error) {
      clear(host);
      host.appendChild(errorBox(error));
    }
  }
}

function headline(e: IEvaluationHeadline, open: () => void): HTMLElement {
  const where = e.stage ? `stage ${e.stage}` : 'the run itself';
  const section = h('section', { className: 'mlops-nb-evaluation-item', 'data-name': e.name, 'data-stage': e.stage ?? '' });
  section.appendChild(h('h3', {}, `${e.name} `, h('span', { className: 'mlops-nb-dim' }, `(${where})`)));
  if (e.error) {
    section.appendChild(h('div', { className: 'mlops-nb-error', role: 'alert' }, `Not readable: ${e.error}`));
    return section;
  }
  section.appendChild(h('p', { className: 'mlops-nb-dim' }, `${e.model ?? ''} · ${e.task ?? ''} · ${e.rows ?? '—'} rows`));
  const base = e.baseline;
  const head = ['metric', 'value', '95% interval', ...(base ? [`vs ${base.model}`, 'paired interval'] : [])];
  const table = h('table', { className: 'mlops-nb-table mlops-nb-evaluation-metrics' }, h('thead', {}, h('tr', {}, ...head.map(t => h('th', { scope: 'col' }, t)))));
  const tbody = h('tbody');
  for (const [name, value] of Object.entries(e.metrics)) {
    if (COUNTS.has(name)) {
      continue;
    }
    const d = base?.deltas[name];
    tbody.appendChild(
      h(
        'tr',
        { 'data-metric': name },
        h('td', {}, name),
        h('td', { className: 'mlops-nb-num' }, num(value)),
        h('td', { className: 'mlops-nb-num' }, interval(e.intervals[name])),
        base ? h('td', { className: 'mlops-nb-num' }, d ? `${d.delta >= 0 ? '+' : ''}${num(d.delta)}` : '') : null,
        base ? h('td', { className: 'mlops-nb-num' }, interval(d)) : null
      )
    );
  }
  table.appendChild(tbody);
  section.appendChild(table);
  const primary = e.primary ?? '';
  const worst = h('ul', { className: 'mlops-nb-worst-slices', 'aria-label': 'Worst slices' });
  for (const s of e.worst_slices) {
    worst.appendChild(h('li', {}, `${s.slice} (${s.rows} rows): ${primary} ${num(s.metrics[primary])} ${interval(s.intervals[primary])}`));
  }
  section.appendChild(h('div', {}, h('b', {}, 'Worst slices'), e.worst_slices.length ? worst : h('p', { className: 'mlops-nb-dim' }, 'none below the overall value')));
  if (e.skipped.length) {
    const list = h('ul', {}, ...e.skipped.map(s => h('li', {}, h('code', {}, s.part), `: ${s.reason}`)));
    section.appendChild(h('div', { className: 'mlops-nb-skipped', role: 'note' }, h('b', {}, `Not computed, or not fully (${e.skipped.length})`), list));
  }
  const button = h('button', { type: 'button', className: 'jp-mod-styled mlops-nb-open-report' }, 'Show the report');
  button.addEventListener('click', open);
  section.appendChild(button);
  return section;
}
