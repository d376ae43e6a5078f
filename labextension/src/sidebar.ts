import { Widget } from '@lumino/widgets';
import { columnNames } from './comparison';
import { GraphView } from './graph';
import { append, clear, empty, errorBox, h, num, runLink, seconds, srOnly, statusIcon, when } from './dom';
import { ApiError, query, requestAPI } from './handler';
import { IStageState, StageStore, isOver } from './stages';
import { IGateResult, IModelDetail, IModelList, IModelSummary, IPromotionResult, IRunPage, IRunSummary, ISettings } from './tokens';

type View = 'stages' | 'runs' | 'registry';

/** What the sidebar needs from the application around it. */
export interface ISidebarOptions {
  store: StageStore;
  settings: () => ISettings;
  /** Open the comparison of these runs in the main area (the sidebar is too narrow for its chart). */
  compare: (runIds: string[]) => void;
  /** Open the evaluations of this run (mnb.evaluate's reports) in the main area. */
  evaluate: (runId: string) => void;
  /** Whether the open notebook's kernel is running a cell (null: no kernel). */
  kernelBusy: () => boolean | null;
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
  private _models: IModelSummary[] | null = null;
  private _modelsHost: HTMLElement | null = null;
  private _versionsHost: HTMLElement | null = null;
  private _form: HTMLFormElement | null = null;
  private _model: string | null = null;
  private _loading = false;
  private _graph = new GraphView();

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

  /** Move the keyboard focus into the sidebar: its selected tab. */
  focusView(): void {
    this._tabs.get(this._view)?.focus();
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
        void this._graph.show(note.path, name => this._opts.store.stage(note.path, name), true);
      }
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

  /** The notebook was saved: re-read its stage graph (drawn from the file), if it is shown. */
  notebookSaved(): void {
    const note = this._opts.notebook();
    if (note && this._view === 'stages') {
      void this._graph.show(note.path, name => this._opts.store.stage(note.path, name), true);
    }
  }

  /** The periodic refresh: re-read what is shown, unless that would throw away a selection. */
  async poll(): Promise<void> {
    if (this._view === 'runs' && this._selected.size === 0) {
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
      append(head, ' · latest run ', runLink(this._opts.uiBase(), run.run_id, run.experiment_id), ` · ${this._runState(run, true).text}`);
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
    table.appendChild(h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, srOnly('status')), ...['stage', 'time · cache'].map(t => h('th', { scope: 'col' }, t)))));
    const tbody = h('tbody');
    for (const name of names) {
      tbody.appendChild(this._stageRow(name, known.get(name), headline));
    }
    table.appendChild(tbody);
    this._body.appendChild(table);
    this._body.appendChild(this._graph.node);
    void this._graph.show(note.path, name => store.stage(note.path, name), false);
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
    // The sidebar is narrow (about 250 px by default): each row is the run and its headline metric; the
    // comparison, in the main area, has the other metrics and the parameters.
    const headline = this._opts.settings().headlineMetrics;
    const metric = columnNames(this._runs.map(r => Object.keys(r.metrics)), headline)[0] ?? null;
    const compare = h('button', { className: 'jp-mod-styled jp-mod-accept mlops-nb-compare', type: 'button' }, 'Compare');
    const evaluation = h('button', { className: 'jp-mod-styled mlops-nb-evaluate', type: 'button', title: "The selected run's evaluations and reports" }, 'Evaluation');
    const count = h('span', { className: 'mlops-nb-dim mlops-nb-selected-count' });
    const updateSelection = () => {
      const n = this._selected.size;
      compare.disabled = n < 2;
      evaluation.disabled = n !== 1;
      count.textContent = n < 2 ? 'select 2 or more runs to compare' : `${n} selected`;
    };
    compare.addEventListener('click', () => this._compare());
    evaluation.addEventListener('click', () => this._selected.size === 1 && this._opts.evaluate([...this._selected][0]));
    this._body.appendChild(h('div', { className: 'mlops-nb-toolbar' }, compare, evaluation, count));
    const table = h('table', { className: 'mlops-nb-table mlops-nb-runs' });
    table.appendChild(
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', { scope: 'col' }, srOnly('select')),
          h('th', { scope: 'col' }, 'run'),
          metric ? h('th', { scope: 'col', className: 'mlops-nb-metric' }, metric) : null
        )
      )
    );
    const tbody = h('tbody');
    // One fragment for the whole page: thousands of rows render in one layout pass.
    const rows = document.createDocumentFragment();
    for (const run of this._runs) {
      const state = this._runState(run, run.run_id === this._opts.store.latestRun(note.path)?.run_id);
      const label = `Select run ${run.run_id.slice(0, 8)}${run.name ? ` (${run.name})` : ''}, ${run.kind ?? 'run'} started ${when(run.start_time)}`;
      const box = h('input', { type: 'checkbox', 'aria-label': label });
      box.checked = this._selected.has(run.run_id);
      box.addEventListener('change', () => {
        box.checked ? this._selected.add(run.run_id) : this._selected.delete(run.run_id);
        updateSelection();
      });
      rows.appendChild(
        h(
          'tr',
          { 'data-run-id': run.run_id, 'data-status': run.status, 'data-state': state.state },
          h('td', {}, box),
          h(
            'td',
            { className: 'mlops-nb-wrap', title: `${run.kind ?? 'run'} · ${state.text} · started ${when(run.start_time)}` },
            `${state.icon} `,
            runLink(this._opts.uiBase(), run.run_id, run.experiment_id),
            h('span', { className: 'mlops-nb-dim' }, ` ${run.kind ?? ''} ${shortWhen(run.start_time)}`)
          ),
          metric ? h('td', { className: 'mlops-nb-metric' }, num(run.metrics[metric])) : null
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
    updateSelection();
  }

  /**
   * How a run is shown. A notebook run stays RUNNING as long as its kernel lives: it is "running" only while
   * the kernel runs a cell (`live`: the run of the open notebook's kernel), else "open, kernel idle".
   */
  private _runState(run: IRunSummary, live: boolean): { state: string; icon: string; text: string } {
    if (run.status !== 'RUNNING') {
      return { state: run.status.toLowerCase(), icon: statusIcon(run.status), text: run.status.toLowerCase() };
    }
    if (run.kind === 'notebook' && !(live && this._opts.kernelBusy())) {
      return { state: 'idle', icon: '○', text: live ? 'open, kernel idle' : 'open (its kernel is idle or gone)' };
    }
    return { state: 'running', icon: statusIcon('RUNNING'), text: 'running' };
  }

  private _compare(): void {
    const ids = this._runs.filter(r => this._selected.has(r.run_id)).map(r => r.run_id);
    if (ids.length >= 2) {
      this._opts.compare(ids);
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

  /** Activated (the palette command, a shortcut): the keyboard focus moves in, as in JupyterLab's own panels. */
  protected onActivateRequest(): void {
    this.focusView();
  }
}

/** "13:05" today, else "Dec 6 13:05": short enough for the sidebar's run list. */
function shortWhen(ms: number): string {
  const d = new Date(ms);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

function pickMetrics(metrics: Record<string, number>, headline: string[], n: number): [string, number][] {
  return columnNames([Object.keys(metrics)], headline)
    .slice(0, n)
    .map(k => [k, metrics[k]]);
}

function gateList(gates: IGateResult[]): HTMLElement {
  const list = h('ul', { className: 'mlops-nb-gates' });
  for (const g of gates) {
    list.appendChild(h('li', { 'data-ok': String(g.ok) }, `${g.ok ? '✓' : '✗'} ${g.name}`, g.ok ? '' : ` — ${g.message}`));
  }
  return list;
}
