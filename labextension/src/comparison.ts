import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';
import { append, clear, errorBox, h, num, when } from './dom';
import { query, requestAPI } from './handler';
import { MetricPicker } from './metricpicker';
import { VEGALITE, VegaLiteChart } from './vegalite';
import { IRunComparison, IRunDiff, IRunSummary, IStageDiff } from './tokens';

const SVG_MAX_POINTS = 1200; // points of the parallel coordinates (runs x axes) drawn as SVG; more on a canvas

/**
 * The comparison of the runs selected in the sidebar, in the main area where it has room: the metric table,
 * the chart (its Vega-Lite spec built by the server: mlops_nb/widgets/charts.py, as `%mlops panel` shows it)
 * and, for two runs, why they differ. One panel, reused for each comparison.
 */
export class ComparisonPanel extends Widget {
  private _chart: VegaLiteChart;
  private _picker: MetricPicker | null = null;
  private _asked = 0; // the latest chart request: an earlier answer arriving later is dropped

  constructor(
    rendermime: IRenderMimeRegistry | null,
    private _headline: () => string[]
  ) {
    super();
    this._chart = new VegaLiteChart(rendermime);
    this.id = 'mlops-nb-comparison';
    this.addClass('mlops-nb-comparison-panel');
    this.title.label = 'MLOps: compare runs';
    this.title.closable = true;
  }

  /** Show the comparison of `runIds` (two or more). */
  async compare(runIds: string[]): Promise<void> {
    this._chart.dispose();
    this._disposePicker();
    clear(this.node);
    this.title.label = `Compare ${runIds.length} runs`;
    const head = h('h2', {}, `Comparing ${runIds.length} runs`);
    const body = h('div', { className: 'mlops-nb-comparison', 'aria-live': 'polite' }, head);
    this.node.appendChild(body);
    let compared: IRunComparison;
    try {
      compared = await requestAPI<IRunComparison>(`compare?${runIds.map(id => `run=${encodeURIComponent(id)}`).join('&')}`);
    } catch (error) {
      body.appendChild(errorBox(error));
      return;
    }
    const runs = compared.runs;
    body.appendChild(metricTable(runs, this._headline()));
    const chartHost = h('div', { className: 'mlops-nb-chart' }, h('span', { className: 'mlops-nb-dim' }, 'drawing…'));
    const diffHost = h('div', { className: 'mlops-nb-diff' });
    if (compared.metrics.length) {
      const picker = new MetricPicker(compared.metrics, metrics => void this._redraw(chartHost, runIds, metrics));
      picker.show(compared.chosen, compared.left_out, false);
      this._picker = picker;
      body.appendChild(picker.node);
    }
    append(body, chartHost, diffHost);
    // a = the older run, b = the newer: deltas say what the newer run changed
    const [older, newer] = [...runs].sort((x, y) => x.start_time - y.start_time).map(r => r.run_id);
    await Promise.all([this._chartInto(chartHost, compared.spec), runs.length === 2 ? diffInto(diffHost, older, newer) : null]);
  }

  /** The chart again, on the metrics picked (null: the server's default choice). */
  private async _redraw(host: HTMLElement, runIds: string[], metrics: string[] | null): Promise<void> {
    const asked = ++this._asked;
    host.dataset.drawn = 'false';
    const picked = metrics === null ? '' : metrics.length ? metrics.map(m => `&metrics=${encodeURIComponent(m)}`).join('') : '&metrics=';
    let compared: IRunComparison;
    try {
      compared = await requestAPI<IRunComparison>(`compare?${runIds.map(id => `run=${encodeURIComponent(id)}`).join('&')}${picked}`);
    } catch (error) {
      if (asked === this._asked) {
        clear(host);
        host.appendChild(errorBox(error));
      }
      return;
    }
    if (asked !== this._asked || this.isDisposed) {
      return;
    }
    this._picker?.show(compared.chosen, compared.left_out, metrics !== null);
    await this._chartInto(host, compared.spec);
  }

  private async _chartInto(host: HTMLElement, spec: Record<string, unknown>): Promise<void> {
    // SVG: the axis names are text a reader (and a screen reader) can select; canvas draws many runs faster
    const lines = (((spec.vconcat as any[]) ?? [])[0]?.data?.values ?? []).length;
    await this._chart.drawInto(host, spec, {
      [VEGALITE]: { embed_options: { renderer: lines > SVG_MAX_POINTS ? 'canvas' : 'svg' } }
    });
  }

  private _disposePicker(): void {
    this._picker?.dispose();
    this._picker = null;
    this._asked++;
  }

  dispose(): void {
    this._chart.dispose();
    this._disposePicker();
    super.dispose();
  }
}

async function diffInto(host: HTMLElement, a: string, b: string): Promise<void> {
  try {
    const diff = await requestAPI<IRunDiff>(`diff${query({ a, b })}`);
    clear(host);
    host.appendChild(diffView(diff));
  } catch (error) {
    host.appendChild(errorBox(error));
  }
}

/** The metric names: the headline ones first (in setting order), then the others alphabetically. */
export function columnNames(keys: string[][], headline: string[]): string[] {
  const all = new Set<string>();
  for (const ks of keys) {
    for (const k of ks) {
      all.add(k);
    }
  }
  const first = headline.filter(m => all.has(m));
  return [...first, ...[...all].filter(k => !first.includes(k)).sort()];
}

function runHeader(r: IRunSummary): HTMLElement {
  return h('th', { scope: 'col', title: `${r.name ?? ''} ${r.run_id} · ${when(r.start_time)}` }, r.run_id.slice(0, 8), h('div', { className: 'mlops-nb-dim' }, r.kind ?? ''));
}

function metricTable(runs: IRunSummary[], headline: string[]): HTMLElement {
  const names = columnNames(runs.map(r => Object.keys(r.metrics)), headline);
  const params = columnNames(runs.map(r => Object.keys(r.params)), []);
  const table = h('table', { className: 'mlops-nb-table mlops-nb-metric-table' });
  table.appendChild(h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'metric / param'), ...runs.map(runHeader))));
  const tbody = h('tbody');
  for (const m of names) {
    const values = runs.map(r => r.metrics[m]);
    const best = Math.max(...values.filter(v => v !== undefined && v !== null && Number.isFinite(v)));
    tbody.appendChild(
      h('tr', { 'data-metric': m }, h('th', { scope: 'row' }, m), ...values.map(v => h('td', { className: v === best ? 'mlops-nb-best' : '' }, num(v))))
    );
  }
  for (const p of params) {
    tbody.appendChild(h('tr', { 'data-param': p, className: 'mlops-nb-param' }, h('th', { scope: 'row' }, p), ...runs.map(r => h('td', {}, r.params[p] ?? '—'))));
  }
  table.appendChild(tbody);
  return h('div', { className: 'mlops-nb-scroll' }, table);
}

function changes(s: IStageDiff): string {
  if (s.in !== 'both') {
    return s.in === 'a' ? 'only in a' : 'only in b';
  }
  const why: string[] = [];
  if (s.code_changed) {
    why.push('code');
  }
  if (s.params_changed.length) {
    why.push(`params: ${s.params_changed.join(', ')}`);
  }
  if (s.inputs_changed.length) {
    why.push(`inputs: ${s.inputs_changed.join(', ')}`);
  }
  return why.length ? `changed ${why.join('; ')}` : 'unchanged';
}

function diffView(d: IRunDiff): HTMLElement {
  const root = h('div', { className: 'mlops-nb-diff-view' }, h('h3', {}, 'Why they differ'));
  append(root, h('div', { className: 'mlops-nb-dim' }, 'a = ', h('code', {}, d.a.slice(0, 8)), ' (older), b = ', h('code', {}, d.b.slice(0, 8))));
  const params = Object.entries(d.params);
  if (params.length) {
    root.appendChild(
      h(
        'table',
        { className: 'mlops-nb-table' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'param'), h('th', { scope: 'col' }, 'a → b'))),
        h('tbody', {}, ...params.map(([k, [a, b]]) => h('tr', { 'data-param': k }, h('td', {}, k), h('td', {}, `${a ?? '—'} → ${b ?? '—'}`))))
      )
    );
  }
  const metrics = Object.entries(d.metrics);
  if (metrics.length) {
    root.appendChild(
      h(
        'table',
        { className: 'mlops-nb-table' },
        h('thead', {}, h('tr', {}, ...['metric', 'a', 'b', 'b − a'].map(t => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          {},
          ...metrics.map(([k, [a, b, delta]]) =>
            h(
              'tr',
              { 'data-metric': k },
              h('td', {}, k),
              h('td', {}, num(a)),
              h('td', {}, num(b)),
              h('td', { className: delta === null || delta === 0 ? '' : delta > 0 ? 'mlops-nb-up' : 'mlops-nb-down' }, delta === null ? '' : `${delta > 0 ? '+' : ''}${num(delta)}`)
            )
          )
        )
      )
    );
  }
  const stages = h('tbody');
  for (const s of d.stages) {
    const what = changes(s);
    const hits = s.cache_hit.map(x => (x === null ? '—' : x ? 'hit' : 'ran')).join(' / ');
    const row = h(
      'tr',
      { className: 'mlops-nb-stage-diff', 'data-stage': s.stage, 'data-changed': String(what !== 'unchanged'), 'data-code-changed': String(s.code_changed) },
      h('td', {}, h('b', {}, s.stage)),
      h('td', {}, what),
      h('td', {}, hits)
    );
    stages.appendChild(row);
    if (s.code_diff) {
      const pre = h('pre', { className: 'mlops-nb-code-diff' });
      for (const line of s.code_diff.split('\n')) {
        pre.appendChild(h('span', { className: line.startsWith('+') ? 'mlops-nb-add' : line.startsWith('-') ? 'mlops-nb-del' : '' }, `${line}\n`));
      }
      stages.appendChild(h('tr', {}, h('td', { colspan: 3 }, pre)));
    }
  }
  root.appendChild(h('table', { className: 'mlops-nb-table' }, h('thead', {}, h('tr', {}, ...['stage', 'what changed', 'cache a / b'].map(t => h('th', { scope: 'col' }, t)))), stages));
  return root;
}
