import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';
import { compareSpec } from './charts';
import { append, clear, empty, errorBox, h, num, runLink, seconds, statusIcon, when } from './dom';
import { ApiError, query, requestAPI } from './handler';
import { IStageState, StageStore, isOver, latestStages } from './stages';
import { IRunView, IGateResult, IModelDetail, IModelList, IModelSummary, IPromotionResult, IRunDiff, IRunPage, IRunSummary, ISettings, IStageDiff } from './tokens';

export const VEGALITE = 'application/vnd.vegalite.v5+json';
type View = 'stages' | 'runs' | 'registry';

/** What the sidebar needs from the application around it. */
export interface ISidebarOptions {
  store: StageStore;
  rendermime: IRenderMimeRegistry | null;
  settings: () => ISettings;
  /** The open notebook the sidebar follows (null: none), and the %%track stage names in its cell order. */
  notebook: () => { path: string; stages: string[] } | null;
  /** The MLflow UI's base URL when the tracking store is an MLflow server (null: no UI to link to). */
  uiBase: () => string | null;
}

/** The "MLOps" left sidebar: Stages of the notebook's latest run, its Runs (compare, diff), the Registry. */
export class Sidebar extends Widget {
  private _view: View = 'stages';
  private _tabs = new Map<View, HTMLButtonElement>();
  private _body: HTMLElement;
  private _runs: IRunSummary[] = [];
  private _runsPath: string | null = null;
  private _nextPage: string | null = null;
  private _selected = new Set<string>();
  private _chart: Widget | null = null;
  private _models: IModelSummary[] | null = null;
  private _modelsHost: HTMLElement | null = null;
  private _versionsHost: HTMLElement | null = null;
  private _form: HTMLFormElement | null = null;
  private _model: string | null = null;
  private _loading = false;

  constructor(private _opts: ISidebarOptions) {
    super();
    this.id = 'mlops-nb-sidebar';
    this.addClass('mlops-nb-sidebar');
    this.title.caption = 'MLOps: stages, runs and models of this notebook';
    const tablist = h('div', { className: 'mlops-nb-tabs', role: 'tablist', 'aria-label': 'MLOps views' });
    for (const [view, text] of [
      ['stages', 'Stages'],
      ['runs', 'Runs'],
      ['registry', 'Registry']
    ] as [View, string][]) {
      const tab = h('button', { className: 'mlops-nb-tab', role: 'tab', 'data-view': view, type: 'button' }, text);
      tab.addEventListener('click', () => this.showView(view));
      tab.addEventListener('keydown', event => this._tabKey(event, view));
      this._tabs.set(view, tab);
      tablist.appendChild(tab);
    }
    const refresh = h('button', { className: 'mlops-nb-refresh jp-mod-styled', type: 'button', title: 'Refresh (re-read from MLflow)', 'aria-label': 'Refresh' }, '⟳');
    refresh.addEventListener('click', () => void this.refresh(true));
    this._body = h('div', { className: 'mlops-nb-body', role: 'tabpanel' });
    append(this.node, h('div', { className: 'mlops-nb-header' }, tablist, refresh), this._body);
    _opts.store.changed.connect((_, path) => {
      if (path !== this._opts.notebook()?.path) {
        return;
      }
      if (this._view === 'stages') {
        this._renderStages();
      } else if (this._view === 'registry') {
        this._fillRunId();
      }
    });
    this._selectTab();
  }

  get view(): View {
    return this._view;
  }

  showView(view: View): void {
    this._view = view;
    this._selectTab();
    void this.refresh(false);
  }

  /** Re-render the current view; `reload` re-reads it from the server. */
  async refresh(reload: boolean): Promise<void> {
    const note = this._opts.notebook();
    if (this._view === 'stages') {
      this._renderStages();
      if (note && reload) {
        await this._guard(() => this._opts.store.refresh(note.path));
      }
    } else if (this._view === 'runs') {
      if (reload || this._runsPath !== (note?.path ?? null)) {
        await this._loadRuns(false);
      } else {
        this._renderRuns();
      }
    } else {
      await this._loadModels(reload);
    }
  }

  /** The periodic refresh: re-read what is shown, unless that would throw away a selection or a comparison. */
  async poll(): Promise<void> {
    if (this._view === 'runs' && this._selected.size === 0 && !this._chart) {
      await this._loadRuns(false);
    } else if (this._view === 'registry') {
      await this._loadModels(true);
    }
  }

  private _selectTab(): void {
    for (const [view, tab] of this._tabs) {
      const on = view === this._view;
      tab.setAttribute('aria-selected', String(on));
      tab.tabIndex = on ? 0 : -1;
      tab.classList.toggle('mlops-nb-mod-selected', on);
    }
    this._body.dataset.view = this._view;
  }

  private _tabKey(event: KeyboardEvent, view: View): void {
    const order: View[] = ['stages', 'runs', 'registry'];
    const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
    if (step) {
      const next = order[(order.indexOf(view) + step + order.length) % order.length];
      this.showView(next);
      this._tabs.get(next)?.focus();
      event.preventDefault();
    }
  }

  private async _guard(work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      this._body.prepend(errorBox(error));
    }
  }

  // ---- Stages -------------------------------------------------------------------------------------------

  private _renderStages(): void {
    const note = this._opts.notebook();
    clear(this._body);
    this._body.dataset.shows = 'stages';
    if (!note) {
      this._body.appendChild(empty('No notebook is open.', 'Open a notebook: its stages and runs show here.'));
      return;
    }
    const store = this._opts.store;
    const known = new Map(store.stages(note.path).map(s => [s.stage, s]));
    const names = [...note.stages, ...[...known.keys()].filter(n => !note.stages.includes(n))];
    const run = store.latestRun(note.path);
    const head = h('div', { className: 'mlops-nb-caption' }, h('b', {}, note.path.split('/').pop() ?? note.path));
    if (run) {
      append(head, ' · latest run ', runLink(this._opts.uiBase(), run.run_id, run.experiment_id), ` · ${run.status.toLowerCase()}`);
    } else if (store.recording(note.path)) {
      append(head, h('span', { className: 'mlops-nb-dim' }, ' · a new run, being recorded'));
    }
    this._body.appendChild(head);
    if (names.length === 0) {
      this._body.appendChild(
        empty(
          'This notebook has no tracked stage yet.',
          'Put %%track NAME on the first line of a cell (right-click a cell → "Track this cell"), then run it.'
        )
      );
      return;
    }
    const headline = this._opts.settings().headlineMetrics;
    const table = h('table', { className: 'mlops-nb-table mlops-nb-stages' });
    table.appendChild(h('thead', {}, h('tr', {}, ...['', 'stage', 'time · cache'].map(t => h('th', { scope: 'col' }, t)))));
    const tbody = h('tbody');
    for (const name of names) {
      tbody.appendChild(this._stageRow(name, known.get(name), headline));
    }
    table.appendChild(tbody);
    this._body.appendChild(table);
  }

  private _stageRow(name: string, s: IStageState | undefined, headline: string[]): HTMLElement {
    const status = s?.status ?? 'NONE';
    const metrics = s ? pickMetrics(s.metrics, headline, 3) : [];
    const cache = s?.cache_hit ? h('span', { className: 'mlops-nb-hit' }, 'cache hit') : s && isOver(s.status) ? h('span', { className: 'mlops-nb-dim' }, 'ran') : null;
    return h(
      'tr',
      { className: 'mlops-nb-stage-row', 'data-stage': name, 'data-status': status, 'data-cache-hit': String(Boolean(s?.cache_hit)) },
      h('td', { className: 'mlops-nb-status', title: status }, s ? statusIcon(status) : '○'),
      h(
        'td',
        { className: 'mlops-nb-wrap' },
        h('b', {}, name),
        s ? (s.status === 'FINISHED' ? '' : ` ${s.status.toLowerCase()}`) : h('span', { className: 'mlops-nb-dim' }, ' not run'),
        metrics.length || s?.run_id
          ? h(
              'div',
              { className: 'mlops-nb-metrics' },
              metrics.map(([k, v]) => `${k} ${num(v)}`).join(', '),
              s?.run_id ? h('span', {}, metrics.length ? ' · run ' : 'run ', runLink(this._opts.uiBase(), s.run_id)) : null
            )
          : null
      ),
      h('td', {}, s && isOver(s.status) ? seconds(s.duration_s) : '', cache ? h('div', {}, cache) : null)
    );
  }

  // ---- Runs ---------------------------------------------------------------------------------------------

  private async _loadRuns(more: boolean): Promise<void> {
    const note = this._opts.notebook();
    if (this._loading) {
      return;
    }
    if (!more) {
      this._runs = [];
      this._nextPage = null;
      this._runsPath = note?.path ?? null;
      this._selected.clear();
    }
    if (!note) {
      this._renderRuns();
      return;
    }
    this._loading = true;
    try {
      const page = await requestAPI<IRunPage>(
        `runs${query({ notebook: note.path, max_results: this._opts.settings().pageSize, page_token: more ? this._nextPage : null })}`
      );
      this._runs.push(...page.runs);
      this._nextPage = page.next_page_token;
      this._renderRuns();
    } catch (error) {
      this._renderRuns();
      this._body.prepend(errorBox(error));
    } finally {
      this._loading = false;
    }
  }

  private _renderRuns(): void {
    this._disposeChart();
    clear(this._body);
    this._body.dataset.shows = 'runs';
    const note = this._opts.notebook();
    if (!note) {
      this._body.appendChild(empty('No notebook is open.', 'Open a notebook to see its runs.'));
      return;
    }
    if (this._runs.length === 0) {
      this._body.appendChild(
        empty(`No run of ${note.path} is recorded yet.`, 'Run the notebook (Run → Run All Cells): each run lands here.')
      );
      return;
    }
    const headline = this._opts.settings().headlineMetrics;
    const metricNames = columnNames(this._runs.map(r => Object.keys(r.metrics)), headline).slice(0, 6);
    const paramNames = columnNames(this._runs.map(r => Object.keys(r.params)), []).slice(0, 6);
    const compare = h('button', { className: 'jp-mod-styled jp-mod-accept mlops-nb-compare', type: 'button' }, 'Compare');
    const count = h('span', { className: 'mlops-nb-dim mlops-nb-selected-count' });
    const updateSelection = () => {
      const n = this._selected.size;
      compare.disabled = n < 2;
      count.textContent = n < 2 ? 'select 2 or more runs to compare' : `${n} selected`;
    };
    compare.addEventListener('click', () => void this._compare());
    this._body.appendChild(h('div', { className: 'mlops-nb-toolbar' }, compare, count));
    const table = h('table', { className: 'mlops-nb-table mlops-nb-runs' });
    table.appendChild(
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', { scope: 'col' }, ''),
          h('th', { scope: 'col' }, 'run'),
          ...paramNames.map(p => h('th', { scope: 'col', className: 'mlops-nb-param' }, p)),
          ...metricNames.map(m => h('th', { scope: 'col', className: 'mlops-nb-metric' }, m))
        )
      )
    );
    const tbody = h('tbody');
    // One fragment for the whole page: thousands of rows render in one layout pass.
    const rows = document.createDocumentFragment();
    for (const run of this._runs) {
      const box = h('input', { type: 'checkbox', 'aria-label': `select run ${run.name ?? run.run_id}` });
      box.checked = this._selected.has(run.run_id);
      box.addEventListener('change', () => {
        box.checked ? this._selected.add(run.run_id) : this._selected.delete(run.run_id);
        updateSelection();
      });
      rows.appendChild(
        h(
          'tr',
          { 'data-run-id': run.run_id, 'data-status': run.status },
          h('td', {}, box),
          h(
            'td',
            { title: `${run.status} · started ${when(run.start_time)}` },
            `${statusIcon(run.status)} `,
            runLink(this._opts.uiBase(), run.run_id, run.experiment_id),
            h('span', { className: 'mlops-nb-dim' }, ` ${when(run.start_time)}`)
          ),
          ...paramNames.map(p => h('td', { className: 'mlops-nb-param' }, run.params[p] ?? '—')),
          ...metricNames.map(m => h('td', { className: 'mlops-nb-metric' }, num(run.metrics[m])))
        )
      );
    }
    tbody.appendChild(rows);
    table.appendChild(tbody);
    this._body.appendChild(h('div', { className: 'mlops-nb-scroll' }, table));
    if (this._nextPage) {
      const more = h('button', { className: 'jp-mod-styled mlops-nb-more', type: 'button' }, `Load more (${this._runs.length} shown)`);
      more.addEventListener('click', () => void this._loadRuns(true));
      this._body.appendChild(more);
    }
    this._body.appendChild(h('div', { className: 'mlops-nb-comparison', 'aria-live': 'polite' }));
    updateSelection();
  }

  private async _compare(): Promise<void> {
    const ids = this._runs.filter(r => this._selected.has(r.run_id)).map(r => r.run_id);
    const host = this._body.querySelector<HTMLElement>('.mlops-nb-comparison');
    if (!host || ids.length < 2) {
      return;
    }
    this._disposeChart();
    clear(host);
    host.appendChild(h('h3', {}, `Comparing ${ids.length} runs`));
    let runs: IRunSummary[];
    try {
      runs = await withStageParams(this._runs.filter(r => this._selected.has(r.run_id)));
    } catch (error) {
      host.appendChild(errorBox(error));
      return;
    }
    host.appendChild(metricTable(runs, this._opts.settings().headlineMetrics));
    const chartHost = h('div', { className: 'mlops-nb-chart' }, h('span', { className: 'mlops-nb-dim' }, 'drawing…'));
    host.appendChild(chartHost);
    const diffHost = h('div', { className: 'mlops-nb-diff' });
    host.appendChild(diffHost);
    const chart = this._chartInto(chartHost, runs);
    // a = the older run, b = the newer: deltas say what the newer run changed
    const [older, newer] = [...runs].sort((x, y) => x.start_time - y.start_time).map(r => r.run_id);
    const diff = ids.length === 2 ? this._diffInto(diffHost, older, newer) : Promise.resolve();
    await Promise.all([chart, diff]);
    host.scrollIntoView({ block: 'nearest' });
  }

  private async _chartInto(host: HTMLElement, runs: IRunSummary[]): Promise<void> {
    const rendermime = this._opts.rendermime;
    try {
      const spec = compareSpec(runs);
      if (!rendermime || !rendermime.mimeTypes.includes(VEGALITE)) {
        throw new Error('JupyterLab has no Vega-Lite renderer enabled (the @jupyterlab/vega5-extension).');
      }
      const renderer = rendermime.createRenderer(VEGALITE);
      const model = rendermime.createModel({ data: { [VEGALITE]: spec as any }, trusted: true });
      clear(host);
      Widget.attach(renderer, host);
      this._chart = renderer;
      await renderer.renderModel(model);
      host.dataset.drawn = 'true';
    } catch (error) {
      clear(host);
      host.appendChild(errorBox(error));
    }
  }

  private async _diffInto(host: HTMLElement, a: string, b: string): Promise<void> {
    try {
      const diff = await requestAPI<IRunDiff>(`diff${query({ a, b })}`);
      clear(host);
      host.appendChild(diffView(diff));
    } catch (error) {
      host.appendChild(errorBox(error));
    }
  }

  private _disposeChart(): void {
    if (this._chart) {
      this._chart.dispose();
      this._chart = null;
    }
  }

  // ---- Registry -----------------------------------------------------------------------------------------

  private async _loadModels(reload: boolean): Promise<void> {
    // The hosts and the form outlive a reload, so a refresh never wipes what the user typed or was told.
    const models = (this._modelsHost ??= h('div', { className: 'mlops-nb-model-list' }));
    const versions = (this._versionsHost ??= h('div', { className: 'mlops-nb-versions' }));
    const form = (this._form ??= this._promoteForm());
    this._fillRunId();
    if (this._body.dataset.shows !== 'registry') {
      clear(this._body);
      append(this._body, models, versions, form);
      this._body.dataset.shows = 'registry';
    }
    try {
      if (reload || this._models === null) {
        this._models = (await requestAPI<IModelList>('models')).models;
      }
      this._renderModels(models);
      if (this._model) {
        await this._loadVersions(this._model);
      }
    } catch (error) {
      clear(models);
      models.appendChild(errorBox(error));
    }
  }

  private _renderModels(host: HTMLElement): void {
    clear(host);
    const list = h('ul', { className: 'mlops-nb-models', 'aria-label': 'Registered models' });
    const models = this._models ?? [];
    for (const model of models) {
      const name = model.name;
      const aliases = Object.entries(model.aliases).map(([a, v]) => `@${a} → v${v}`).join(', ');
      const button = h(
        'button',
        { type: 'button', className: 'mlops-nb-model', 'data-model': name, 'aria-pressed': String(name === this._model) },
        name,
        h('span', { className: 'mlops-nb-dim' }, ` v${model.latest_version ?? '—'}${aliases ? ` · ${aliases}` : ''}`)
      );
      button.addEventListener('click', () => {
        this._model = name;
        const input = this._form?.querySelector<HTMLInputElement>('input[name=name]');
        if (input && !input.value) {
          input.value = name;
        }
        void this._loadModels(false);
      });
      list.appendChild(h('li', {}, button));
    }
    if (models.length === 0) {
      host.appendChild(
        empty('No registered model yet.', 'Promote a run below (or run `mlops-nb promote RUN_ID --name NAME`) to register its model.')
      );
    } else {
      append(host, h('h3', {}, 'Models'), list);
    }
  }

  private async _loadVersions(name: string): Promise<void> {
    const host = this._versionsHost;
    if (!host) {
      return;
    }
    const detail = await requestAPI<IModelDetail>(`models/${encodeURIComponent(name)}`);
    const versions = detail.versions;
    clear(host);
    host.appendChild(h('h3', {}, `${name}: versions`));
    if (versions.length === 0) {
      host.appendChild(empty('This model has no version.', 'Promote a run into it below.'));
      return;
    }
    const table = h('table', { className: 'mlops-nb-table' });
    table.appendChild(h('thead', {}, h('tr', {}, ...['version', 'aliases', 'run', 'created', 'evidence'].map(t => h('th', { scope: 'col' }, t)))));
    const tbody = h('tbody');
    for (const v of versions) {
      const evidence = Object.entries(v.evidence);
      // MLflow's version search leaves a version's aliases out: the model's alias map has them
      const aliases = Object.entries(detail.aliases)
        .filter(([, version]) => version === v.version)
        .map(([alias]) => alias);
      tbody.appendChild(
        h(
          'tr',
          { 'data-version': v.version, 'data-aliases': aliases.join(',') },
          h('td', {}, h('b', {}, v.version)),
          h('td', {}, ...aliases.map(a => h('span', { className: 'mlops-nb-alias' }, a))),
          h('td', {}, v.run_id ? runLink(this._opts.uiBase(), v.run_id) : '—'),
          h('td', {}, when(v.creation_time)),
          h(
            'td',
            { className: 'mlops-nb-evidence' },
            evidence.length
              ? h('details', {}, h('summary', {}, `${evidence.length} tags`), h('dl', {}, ...evidence.flatMap(([k, val]) => [h('dt', {}, k.replace('mlops_nb.', '')), h('dd', {}, val)])))
              : '—'
          )
        )
      );
    }
    table.appendChild(tbody);
    host.appendChild(h('div', { className: 'mlops-nb-scroll' }, table));
  }

  /**
   * The run to promote unless the user typed one: the one selected in Runs, else the notebook's latest (as
   * the store knows it, else the newest the Runs view listed). Called again when the store learns of a run.
   */
  private _fillRunId(): void {
    const runId = this._form?.querySelector<HTMLInputElement>('input[name=run_id]');
    if (!runId || runId.dataset.edited) {
      return;
    }
    const note = this._opts.notebook();
    const selected = [...this._selected];
    const listed = note && this._runsPath === note.path ? this._runs[0]?.run_id : undefined;
    const latest = (note && this._opts.store.latestRun(note.path)?.run_id) || listed || '';
    runId.value = selected.length === 1 ? selected[0] : latest;
  }

  private _promoteForm(): HTMLFormElement {
    const field = (label: string, input: HTMLElement, hint?: string) =>
      h('label', { className: 'mlops-nb-field' }, h('span', {}, label), input, hint ? h('small', { className: 'mlops-nb-dim' }, hint) : null);
    const runId = h('input', { className: 'jp-mod-styled', name: 'run_id', required: true, placeholder: 'run id (Runs view: select one)' });
    runId.addEventListener('input', () => (runId.dataset.edited = 'true'));
    const name = h('input', { className: 'jp-mod-styled', name: 'name', required: true, value: this._model ?? '', placeholder: 'e.g. wine' });
    const alias = h('input', { className: 'jp-mod-styled', name: 'alias', value: 'champion' });
    const require = h('textarea', { className: 'jp-mod-styled', name: 'require', rows: 2, placeholder: 'accuracy >= 0.9' });
    const mustBeat = h('input', { className: 'jp-mod-styled', name: 'must_beat', placeholder: 'an alias, e.g. champion (optional)' });
    const metric = h('input', { className: 'jp-mod-styled', name: 'metric', placeholder: 'accuracy (with must beat)' });
    const submit = h('button', { className: 'jp-mod-styled jp-mod-accept', type: 'submit' }, 'Promote');
    const result = h('div', { className: 'mlops-nb-promote-result', 'aria-live': 'polite' });
    const form = h(
      'form',
      { className: 'mlops-nb-promote' },
      h('h3', {}, 'Promote a run’s model'),
      field('Run', runId),
      field('Model name', name),
      field('Alias', alias),
      field('Gates', require, 'one requirement a line: METRIC OP VALUE'),
      field('Must beat', mustBeat),
      field('Metric', metric),
      submit,
      result
    );
    form.addEventListener('submit', event => {
      event.preventDefault();
      const body: Record<string, unknown> = {
        run_id: runId.value.trim(),
        alias: alias.value.trim() || 'champion',
        require: require.value.split(/\n|,/).map(s => s.trim()).filter(Boolean)
      };
      if (mustBeat.value.trim()) {
        body.must_beat = mustBeat.value.trim();
        body.metric = metric.value.trim() || null;
      }
      submit.disabled = true;
      clear(result);
      result.appendChild(h('span', { className: 'mlops-nb-dim' }, 'promoting…'));
      requestAPI<IPromotionResult>(`models/${encodeURIComponent(name.value.trim())}/promote`, { method: 'POST', body: JSON.stringify(body) })
        .then(answer => {
          clear(result);
          result.dataset.outcome = 'promoted';
          const done = h('p', { className: 'mlops-nb-ok' }, `✓ ${answer.name} version ${answer.version} is now @${answer.alias}`);
          append(result, done, gateList(answer.gates));
          this._model = answer.name;
          void this._loadModels(true);
        })
        .catch(error => {
          clear(result);
          result.dataset.outcome = 'refused';
          result.appendChild(errorBox(error));
          if (error instanceof ApiError) {
            result.appendChild(gateList(error.body.gates ?? []));
          }
        })
        .finally(() => (submit.disabled = false));
    });
    return form;
  }

  protected onAfterShow(): void {
    void this.refresh(false);
  }
}

/**
 * The runs with their parameters: a job or sweep run has them itself; a notebook run records them on the
 * stages that read them (C on train), so those runs are read with their stages, 6 requests at a time.
 */
async function withStageParams(runs: IRunSummary[]): Promise<IRunSummary[]> {
  const out = [...runs];
  const todo = runs.map((r, i) => i).filter(i => Object.keys(runs[i].params).length === 0);
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const i = todo[next++];
      const run = await requestAPI<IRunView>(`runs/${encodeURIComponent(runs[i].run_id)}`);
      const params = { ...run.params };
      for (const stage of latestStages(run.stages)) {
        for (const [k, v] of Object.entries(stage.params)) {
          params[k] ??= v;
        }
      }
      out[i] = { ...runs[i], params };
    }
  };
  await Promise.all(Array.from({ length: Math.min(6, todo.length) }, worker));
  return out;
}

/** The metric names: the headline ones first (in setting order), then the others alphabetically. */
function columnNames(keys: string[][], headline: string[]): string[] {
  const all = new Set<string>();
  for (const ks of keys) {
    for (const k of ks) {
      all.add(k);
    }
  }
  const first = headline.filter(m => all.has(m));
  return [...first, ...[...all].filter(k => !first.includes(k)).sort()];
}

function pickMetrics(metrics: Record<string, number>, headline: string[], n: number): [string, number][] {
  return columnNames([Object.keys(metrics)], headline)
    .slice(0, n)
    .map(k => [k, metrics[k]]);
}

function metricTable(runs: IRunSummary[], headline: string[]): HTMLElement {
  const names = columnNames(runs.map(r => Object.keys(r.metrics)), headline);
  const table = h('table', { className: 'mlops-nb-table mlops-nb-metric-table' });
  table.appendChild(h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'metric'), ...runs.map(r => h('th', { scope: 'col', title: `${r.name ?? ''} ${r.run_id} · ${when(r.start_time)}` }, r.run_id.slice(0, 8))))));
  const tbody = h('tbody');
  for (const m of names) {
    const values = runs.map(r => r.metrics[m]);
    const best = Math.max(...values.filter(v => v !== undefined && Number.isFinite(v)));
    tbody.appendChild(
      h('tr', { 'data-metric': m }, h('th', { scope: 'row' }, m), ...values.map(v => h('td', { className: v === best ? 'mlops-nb-best' : '' }, num(v))))
    );
  }
  table.appendChild(tbody);
  return table;
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
  append(root, h('div', { className: 'mlops-nb-dim' }, 'a = ', h('code', {}, d.a.slice(0, 8)), ', b = ', h('code', {}, d.b.slice(0, 8))));
  const params = Object.entries(d.params);
  if (params.length) {
    root.appendChild(
      h('table', { className: 'mlops-nb-table' }, h('thead', {}, h('tr', {}, h('th', {}, 'param'), h('th', {}, 'a → b'))), h('tbody', {}, ...params.map(([k, [a, b]]) => h('tr', { 'data-param': k }, h('td', {}, k), h('td', {}, `${a ?? '—'} → ${b ?? '—'}`)))))
    );
  }
  const metrics = Object.entries(d.metrics);
  if (metrics.length) {
    root.appendChild(
      h(
        'table',
        { className: 'mlops-nb-table' },
        h('thead', {}, h('tr', {}, ...['metric', 'a', 'b', 'b − a'].map(t => h('th', {}, t)))),
        h('tbody', {}, ...metrics.map(([k, [a, b, delta]]) => h('tr', { 'data-metric': k }, h('td', {}, k), h('td', {}, num(a)), h('td', {}, num(b)), h('td', { className: delta === null || delta === 0 ? '' : delta > 0 ? 'mlops-nb-up' : 'mlops-nb-down' }, delta === null ? '' : `${delta > 0 ? '+' : ''}${num(delta)}`))))
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
  root.appendChild(h('table', { className: 'mlops-nb-table' }, h('thead', {}, h('tr', {}, ...['stage', 'what changed', 'cache a / b'].map(t => h('th', {}, t)))), stages));
  return root;
}

function gateList(gates: IGateResult[]): HTMLElement {
  const list = h('ul', { className: 'mlops-nb-gates' });
  for (const g of gates) {
    list.appendChild(h('li', { 'data-ok': String(g.ok) }, `${g.ok ? '✓' : '✗'} ${g.name}`, g.ok ? '' : ` — ${g.message}`));
  }
  return list;
}
