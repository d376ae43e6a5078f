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
  /** Browser time (ms) at which this state arrived: events beat older REST answers. */
  seen: number;
  /** Set by the browser (a cell started or failed), not yet confirmed by the server. */
  local?: boolean;
}

/** Kernel and browser clocks may differ by this much (ms); they share a machine in the common case. */
const CLOCK_SKEW_MS = 5000;

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

  get changed(): ISignal<this, string> {
    return this._changed;
  }

  stages(path: string): IStageState[] {
    return [...(this._byPath.get(path)?.values() ?? [])];
  }

  stage(path: string, name: string): IStageState | undefined {
    return this._byPath.get(path)?.get(name);
  }

  latestRun(path: string): IRunDetail | null {
    return this._runs.get(path) ?? null;
  }

  /** Re-read the notebook's latest run from the server (one request at a time per notebook). */
  refresh(path: string): Promise<void> {
    const running = this._inflight.get(path);
    if (running) {
      return running;
    }
    const asked = Date.now();
    const job = requestAPI<INotebookRuns>(`notebook${query({ path })}`)
      .then(answer => {
        const run = answer.run;
        this._runs.set(path, run);
        const known = this._stagesMap(path);
        for (const s of run ? latestStages(run.stages) : []) {
          const old = known.get(s.stage);
          if (old && (old.seen > asked || (old.local && s.start_time < old.seen - CLOCK_SKEW_MS))) {
            continue; // a live event newer than this answer, or a cell started after this stage ran
          }
          known.set(s.stage, fromSummary(s, asked));
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
    this._stagesMap(path).set(data.stage, {
      stage: data.stage,
      status: data.status,
      cache_hit: Boolean(data.cache_hit),
      duration_s: data.duration_s,
      run_id: data.run_id,
      metrics: data.metrics,
      seen: Date.now()
    });
    this._changed.emit(path);
    return path;
  }

  /** A %%track cell started (RUNNING) or failed (FAILED) in the browser, until the server says more. */
  markLocal(path: string, stage: string, status: 'RUNNING' | 'FAILED'): void {
    const old = this._stagesMap(path).get(stage);
    this._stagesMap(path).set(stage, {
      stage,
      status,
      local: true,
      cache_hit: false,
      duration_s: null,
      run_id: null,
      metrics: old?.metrics ?? {},
      seen: Date.now()
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

/** The last execution of each stage, in the order the stages first ran. */
export function latestStages(stages: IStageSummary[]): IStageSummary[] {
  const latest = new Map<string, IStageSummary>();
  for (const s of [...stages].sort((a, b) => a.start_time - b.start_time)) {
    latest.set(s.stage, s);
  }
  return [...latest.values()];
}

function fromSummary(s: IStageSummary, seen: number): IStageState {
  return {
    stage: s.stage,
    status: s.status,
    cache_hit: s.cache_hit,
    duration_s: s.duration_s,
    run_id: s.run_id,
    metrics: s.metrics,
    seen
  };
}

/** `%%track NAME ...` at the top of a cell: NAME, else null. */
export function trackedStage(source: string): string | null {
  const match = /^\s*%%track[ \t]+([^\s]+)/.exec(source);
  return match ? match[1] : null;
}
