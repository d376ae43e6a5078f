import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';
import { append, clear, empty, errorBox, h, num, statusIcon, when } from './dom';
import { requestAPI } from './handler';
import { VegaLiteChart } from './vegalite';
import { IRunPage, IRunSummary } from './tokens';

/** One trial of a study (tracking/studies.py TrialSummary). */
export interface ITrialSummary {
  trial: number;
  state: string | null;
  status: string;
  value: number | null;
  params: Record<string, string>;
  best: boolean;
  run_id: string;
}

/** GET studies/RUN_ID (widgets/study_view.py StudyView). */
export interface IStudyView {
  run: IRunSummary;
  metric: string;
  direction: string;
  space: Record<string, string>;
  trials: ITrialSummary[];
  importances: Record<string, number> | null;
  spec: Record<string, unknown>;
}

const STATES = ['COMPLETE', 'PRUNED', 'FAIL'];

function counts(run: IRunSummary): string {
  const m = run.metrics;
  const parts = STATES.map(s => [m[`trials_${s.toLowerCase()}`], s.toLowerCase()] as const).filter(([n]) => n !== undefined);
  return parts.length ? parts.map(([n, s]) => `${num(n)} ${s}`).join(', ') : 'running';
}

function best(run: IRunSummary): string {
  const metric = run.params.metric ?? '';
  const value = run.metrics[`best_${metric}`];
  return value === undefined ? 'no complete trial yet' : `best ${metric} ${num(value)}`;
}

/**
 * The Studies view in the left sidebar: the project's studies (`mlops-nb tune` runs, newest first). Choosing
 * one opens its charts in the main area, where they have room.
 */
export class StudiesSidebar extends Widget {
  private _body: HTMLElement;

  constructor(private _open: (runId: string) => void) {
    super();
    this.id = 'mlops-nb-studies';
    this.addClass('mlops-nb-sidebar');
    this.addClass('mlops-nb-studies');
    this.title.caption = 'MLOps: the studies of mlops-nb tune';
    const refresh = h('button', { className: 'mlops-nb-refresh jp-mod-styled', type: 'button', title: 'Refresh (re-read from MLflow)', 'aria-label': 'Refresh' }, '⟳');
    refresh.addEventListener('click', () => void this.refresh());
    this._body = h('div', { className: 'mlops-nb-body', 'aria-live': 'polite' });
    append(this.node, h('div', { className: 'mlops-nb-header' }, h('h2', { className: 'mlops-nb-studies-title' }, 'Studies'), refresh), this._body);
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  async refresh(): Promise<void> {
    let page: IRunPage;
    try {
      page = await requestAPI<IRunPage>('studies');
    } catch (error) {
      clear(this._body);
      this._body.appendChild(errorBox(error));
      return;
    }
    clear(this._body);
    if (!page.runs.length) {
      this._body.appendChild(empty('No study yet.', 'Run mlops-nb tune NOTEBOOK --space … --metric M (or mnb.tune) and refresh.'));
      return;
    }
    const list = h('ul', { className: 'mlops-nb-study-list', 'aria-label': 'Studies' });
    for (const run of page.runs) {
      const button = h(
        'button',
        { className: 'mlops-nb-study-item', type: 'button', 'data-run-id': run.run_id, title: `Show study run ${run.run_id}` },
        h('span', { className: 'mlops-nb-study-name' }, `${statusIcon(run.status)} ${run.name ?? run.run_id.slice(0, 8)}`),
        h('span', { className: 'mlops-nb-study-best' }, best(run)),
        h('span', { className: 'mlops-nb-dim' }, `${counts(run)} · ${run.params.sampler ?? ''} · ${when(run.start_time)}`)
      );
      button.addEventListener('click', () => this._open(run.run_id));
      list.appendChild(h('li', {}, button));
    }
    this._body.appendChild(list);
  }
}

/** A study in the main area: what was tuned and the best trial, the charts (built by the server), the trials. */
export class StudyPanel extends Widget {
  private _chart: VegaLiteChart;

  constructor(rendermime: IRenderMimeRegistry | null) {
    super();
    this._chart = new VegaLiteChart(rendermime);
    this.id = 'mlops-nb-study';
    this.addClass('mlops-nb-comparison-panel');
    this.title.label = 'MLOps: study';
    this.title.closable = true;
  }

  async showStudy(runId: string): Promise<void> {
    this._chart.dispose();
    clear(this.node);
    const body = h('div', { className: 'mlops-nb-study-view', 'aria-live': 'polite' }, h('span', { className: 'mlops-nb-dim' }, 'reading the study…'));
    this.node.appendChild(body);
    let view: IStudyView;
    try {
      view = await requestAPI<IStudyView>(`studies/${encodeURIComponent(runId)}`);
    } catch (error) {
      clear(body);
      body.appendChild(errorBox(error));
      return;
    }
    clear(body);
    const name = view.run.name ?? runId;
    this.title.label = `Study: ${name}`;
    const top = view.trials.find(t => t.best);
    const space = Object.entries(view.space).map(([k, v]) => `${k} = ${v}`).join(', ');
    append(
      body,
      h('h2', {}, name),
      h('p', { className: 'mlops-nb-study-summary' }, `${view.direction} ${view.metric} over ${space} · ${view.trials.length} trials (${counts(view.run)})`),
      top
        ? h('p', { className: 'mlops-nb-study-top' }, `Best: trial ${top.trial}, ${view.metric} = ${num(top.value)} (${Object.keys(view.space).map(k => `${k}=${param(top.params[k])}`).join(', ')})`)
        : null,
      view.importances ? null : h('p', { className: 'mlops-nb-dim' }, 'Parameter importances need three or more complete trials.')
    );
    const chartHost = h('div', { className: 'mlops-nb-chart' }, h('span', { className: 'mlops-nb-dim' }, 'drawing…'));
    append(body, chartHost, trialTable(view));
    await this._chart.drawInto(chartHost, view.spec);
  }


  dispose(): void {
    this._chart.dispose();
    super.dispose();
  }
}

/** A parameter as MLflow keeps it (a string): a number at 4 significant digits, anything else as it is. */
function param(value: string | undefined): string {
  if (value === undefined) {
    return '—';
  }
  const n = Number(value);
  return value.trim() !== '' && Number.isFinite(n) ? num(n) : value;
}

function trialTable(view: IStudyView): HTMLElement {
  const params = Object.keys(view.space);
  const head = h('tr', {}, h('th', {}, 'trial'), h('th', {}, 'state'), h('th', {}, view.metric), ...params.map(p => h('th', {}, p)));
  const table = h('table', { className: 'mlops-nb-trial-table' }, h('thead', {}, head));
  const rows = h('tbody', {});
  for (const t of view.trials) {
    const state = t.state ?? 'FAIL';
    rows.appendChild(
      h(
        'tr',
        { 'data-trial': t.trial, 'data-state': state, className: t.best ? 'mlops-nb-trial-best' : null },
        h('td', {}, t.best ? `${t.trial} ★` : String(t.trial)),
        h('td', { className: `mlops-nb-trial-${state.toLowerCase()}` }, t.state ? state.toLowerCase() : 're-run'),
        h('td', {}, num(t.value)),
        ...params.map(p => h('td', { title: t.params[p] ?? '' }, param(t.params[p])))
      )
    );
  }
  table.appendChild(rows);
  return table;
}
