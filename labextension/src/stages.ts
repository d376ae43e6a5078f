import { Signal, ISignal } from '@lumino/signaling';
import { query, requestAPI } from './handler';
import { INotebookRuns, IRunDetail, IStageEvent, IStageSummary } from './tokens';

/** What the front end knows of one stage of a notebook: the latest of REST answers and live events. */
export interface IStageState {
  stage: string;
  status: string;
  cache_hit: boolean;
  duration_s: number | null;
  run_id: string | null;
  metrics: Record<string, number>;
  /** When this execution of the stage started (ms since the epoch): a REST answer about an older one is ignored. */
  started: number;
  /** Set by the browser (a cell started or failed), not yet confirmed by the server. */
  local?: boolean;
  /** mlops-nb's id of this execution (from events), to keep its start time when it ends. */
  run_key?: string;
  /** Set when the stage ran before this session ran anything in the notebook: the run it is from. */
  earlier?: { run_id: string; kind: string | null; start_time: number };
}

/** Kernel and browser clocks may differ by this much (ms); they share a machine in the common case. */
const CLOCK_SKEW_MS = 2000;

/** The path's end, for matching a kernel's notebook path with the one JupyterLab knows. */
function samePath(a: string, b: string): boolean {
  const x = a.replace(/^\.?\//, '');
  const y = b.replace(/^\.?\//, '');
  return x === y || x.endsWith(`/${y}`) || y.endsWith(`/${x}`);
}

/**
 * The stages of every open notebook, keyed by notebook path then stage name. The sidebar's Stages view and
 * the cell badges both render from here, so they always agree.
 */
export class StageStore {
  private _byPath = new Map<string, Map<string, IStageState>>();
  private _runs = new Map<string, IRunDetail | null>();
  private _changed = new Signal<this, string>(this);
  private _inflight = new Map<string, Promise<void>>();
  /** Per notebook: the run key of the run its live events belong to, and when that run's first event came. */
  private _live = new Map<string, { parent: string | null; since: number }>();
  /** Per notebook: when this browser session first ran (or saw running) one of its stages. */
  private _session = new Map<string, number>();

  get changed(): ISignal<this, string> {
    return this._changed;
  }

  stages(path: string): IStageState[] {
    return [...(this._byPath.get(path)?.values() ?? [])];
  }

  stage(path: string, name: string): IStageState | undefined {
    return this._byPath.get(path)?.get(name);
  }

  /** The notebook's latest run as MLflow has it; null while live events show a newer run MLflow lacks yet. */
  latestRun(path: string): IRunDetail | null {
    const run = this._runs.get(path) ?? null;
    const live = this._live.get(path);
    return run && live && run.start_time < live.since - CLOCK_SKEW_MS ? null : run;
  }

  /** Live events show a run that MLflow has not answered with yet (its stages are shown, its id not). */
  recording(path: string): boolean {
    return this._live.has(path) && this.latestRun(path) === null;
  }

  /** Re-read the notebook's latest run from the server (one request at a time per notebook). */
  refresh(path: string): Promise<void> {
    const running = this._inflight.get(path);
    if (running) {
      return running;
    }
    const job = requestAPI<INotebookRuns>(`notebook${query({ path })}`)
      .then(answer => {
        const run = answer.run;
        this._runs.set(path, run);
        const known = this._stagesMap(path);
        for (const s of run ? latestStages(run.stages) : []) {
          const old = known.get(s.stage);
          if (old && s.start_time < old.started - CLOCK_SKEW_MS) {
            continue; // the stage ran again since: live events know better
          }
          const fresh = fromSummary(s);
          const since = this._session.get(path);
          if (run && (since === undefined || s.start_time < since - CLOCK_SKEW_MS)) {
            fresh.earlier = { run_id: run.run_id, kind: run.kind, start_time: run.start_time };
          }
          if (old && !old.local && isOver(old.status) && !isOver(s.status)) {
            // the same execution, which the events saw end before MLflow did: keep what they said
            known.set(s.stage, { ...old, run_id: old.run_id ?? s.run_id });
            continue;
          }
          if (old && !old.local) {
            fresh.duration_s ??= old.duration_s;
          }
          known.set(s.stage, fresh);
        }
        this._changed.emit(path);
      })
      .finally(() => this._inflight.delete(path));
    this._inflight.set(path, job);
    return job;
  }

  /** A stage event from the server's event bus; the path of the open notebook it belongs to, if any. */
  applyEvent(data: IStageEvent, openPaths: string[]): string | null {
    const from = data.notebook;
    if (!from || !data.stage) {
      return null;
    }
    const path = openPaths.find(p => samePath(p, from)) ?? null;
    if (path === null) {
      return null;
    }
    if (!this._session.has(path)) {
      this._session.set(path, data.status === 'RUNNING' ? data.time : data.time - (data.duration_s ?? 0) * 1000);
    }
    const live = this._live.get(path);
    if (!live || live.parent !== data.parent_key) {
      this._live.set(path, { parent: data.parent_key, since: data.time });
    }
    const old = this._stagesMap(path).get(data.stage);
    const started =
      data.status === 'RUNNING'
        ? data.time
        : old?.run_key === data.run_key
          ? old.started
          : data.time - (data.duration_s ?? 0) * 1000;
    this._stagesMap(path).set(data.stage, {
      stage: data.stage,
      status: data.status,
      cache_hit: data.cache_hit,
      duration_s: data.duration_s,
      run_id: data.run_id,
      metrics: data.metrics,
      started,
      run_key: data.run_key
    });
    this._changed.emit(path);
    return path;
  }

  /** A %%track cell queued (QUEUED) or failed (FAILED) in the browser, until the server says more. */
  markLocal(path: string, stage: string, status: 'QUEUED' | 'FAILED'): void {
    if (!this._session.has(path)) {
      this._session.set(path, Date.now());
    }
    const old = this._stagesMap(path).get(stage);
    this._stagesMap(path).set(stage, {
      stage,
      status,
      local: true,
      cache_hit: false,
      duration_s: null,
      run_id: null,
      metrics: old?.metrics ?? {},
      started: status === 'QUEUED' ? Date.now() : (old?.started ?? Date.now())
    });
    this._changed.emit(path);
  }

  private _stagesMap(path: string): Map<string, IStageState> {
    let known = this._byPath.get(path);
    if (!known) {
      known = new Map();
      this._byPath.set(path, known);
    }
    return known;
  }
}

/** The stage has ended (FINISHED, FAILED, KILLED). */
export function isOver(status: string): boolean {
  return !['RUNNING', 'QUEUED'].includes(status);
}

/** The last execution of each stage, in the order the stages first ran. */
export function latestStages(stages: IStageSummary[]): IStageSummary[] {
  const latest = new Map<string, IStageSummary>();
  for (const s of [...stages].sort((a, b) => a.start_time - b.start_time)) {
    latest.set(s.stage, s);
  }
  return [...latest.values()];
}

function fromSummary(s: IStageSummary): IStageState {
  return {
    stage: s.stage,
    status: s.status,
    cache_hit: s.cache_hit,
    duration_s: s.duration_s,
    run_id: s.run_id,
    metrics: s.metrics,
    started: s.start_time
  };
}

/** `%%track NAME ...` at the top of a cell: NAME, read as the kernel reads it (shell quoting: `"a b"` and
 * `'a b'` name stage `a b`), else null. */
export function trackedStage(source: string): string | null {
  const line = /^\s*%%track[ \t]+([^\n]*)/.exec(source);
  if (!line) {
    return null;
  }
  let name = '';
  let quote = '';
  let escaped = false;
  for (const char of line[1]) {
    if (escaped) {
      name += quote === '"' && char !== '"' && char !== '\\' ? '\\' + char : char;
      escaped = false;
    } else if (char === '\\' && quote !== "'") {
      escaped = true;
    } else if (quote) {
      if (char === quote) {
        quote = '';
      } else {
        name += char;
      }
    } else if (char === '"' || char === "'") {
      quote = char;
    } else if (/\s/.test(char)) {
      break;
    } else {
      name += char;
    }
  }
  return name && !quote ? name : null;
}
