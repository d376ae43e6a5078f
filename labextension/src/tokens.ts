/**
 * The REST payloads of the server extension (/mlops-nb/api/...), mirroring the TypedDicts of
 * mlops_nb/tracking/records.py. Keep the two in step: a field renamed there is renamed here.
 */

/** A row of `mlops-nb runs` (records.RunSummary). */
export interface IRunSummary {
  run_id: string;
  name: string | null;
  experiment_id: string;
  kind: string | null;
  status: string;
  start_time: number;
  end_time: number | null;
  duration_s: number | null;
  notebook: string | null;
  params: Record<string, string>;
  metrics: Record<string, number>;
}

/** One stage of a run (records.StageSummary). */
export interface IStageSummary {
  run_id: string;
  stage: string;
  status: string;
  start_time: number;
  duration_s: number | null;
  cache_hit: boolean;
  cache_key: string | null;
  cache_source_run: string | null;
  cache_miss_reason: string | null;
  code_hash: string | null;
  params: Record<string, string>;
  metrics: Record<string, number>;
  inputs: Record<string, string>;
  files: Record<string, string>;
  modules: Record<string, string>;
  outputs: Record<string, string>;
}

/** One run with its tags and stages (records.RunDetail). */
export interface IRunDetail extends IRunSummary {
  experiment: string;
  tags: Record<string, string>;
  stages: IStageSummary[];
  deleted: boolean;
}

/** One artifact file of a run (records.ArtifactRecord). */
export interface IArtifactRecord {
  path: string;
  size: number | null;
}

/** GET runs/RUN_ID (records.RunView): the run, its stages and its own artifact files. */
export interface IRunView extends IRunDetail {
  artifacts: IArtifactRecord[];
}

/** A page of runs, newest first (records.RunPage). */
export interface IRunPage {
  runs: IRunSummary[];
  next_page_token: string | null;
}

/** How one stage differs between two runs (records.StageDiff). */
export interface IStageDiff {
  stage: string;
  in: 'both' | 'a' | 'b';
  code_changed: boolean;
  code_diff: string;
  params_changed: string[];
  inputs_changed: string[];
  cache_hit: [boolean | null, boolean | null];
  metrics: Record<string, [number | null, number | null, number | null]>;
  run_ids: [string | null, string | null];
}

/** Why two runs differ (records.RunDiff). */
export interface IRunDiff {
  a: string;
  b: string;
  params: Record<string, [string | null, string | null]>;
  metrics: Record<string, [number | null, number | null, number | null]>;
  stages: IStageDiff[];
  deleted: [boolean, boolean];
}

/** GET compare?run=A&run=B[&metrics=M] (records.RunComparison): the runs compared and the Vega-Lite v5 spec of the chart. */
export interface IRunComparison {
  runs: IRunSummary[];
  spec: Record<string, unknown>;
  metrics: string[]; // every metric of the runs, in the chart's default order (what the picker lists)
  chosen: string[]; // the metrics the chart draws
  left_out: string[]; // chosen (or by default) but not drawn: more than 12 axes
}

/** A registered model version (records.ModelVersionRecord). */
export interface IModelVersion {
  name: string;
  version: string;
  aliases: string[];
  run_id: string | null;
  source: string;
  status: string;
  creation_time: number;
  tags: Record<string, string>;
}

/** A version in GET models/NAME: the record plus its promotion evidence (records.ModelVersionSummary). */
export interface IModelVersionSummary extends IModelVersion {
  evidence: Record<string, string>;
}

/** A row of GET models (records.ModelSummary). */
export interface IModelSummary {
  name: string;
  description: string;
  aliases: Record<string, string>;
  latest_version: string | null;
  last_updated: number;
  tags: Record<string, string>;
}

/** GET models (records.ModelList). */
export interface IModelList {
  models: IModelSummary[];
}

/** GET models/NAME (records.ModelDetail): its versions, newest first. */
export interface IModelDetail {
  name: string;
  description: string;
  aliases: Record<string, string>;
  last_updated: number;
  tags: Record<string, string>;
  versions: IModelVersionSummary[];
  last_monitor: IRunSummary | null;
  last_monitor_version: string | null;
}

/** GET status (records.ServerStatus); the tracking URI comes with its credentials redacted. */
export interface IServerStatus {
  version: string;
  experiment: string | null;
  tracking_uri: string;
  event_schema: string;
}

/** GET notebook?path= (records.NotebookRuns). */
export interface INotebookRuns {
  path: string;
  run: IRunDetail | null;
}

/** A stage of GET graph?path= (records.GraphStage); kind 'cell': a cell outside any stage. */
export interface IGraphStage {
  name: string;
  kind: 'stage' | 'cell';
  cell: number;
  inputs: string[];
  outputs: string[];
  params: string[];
  files: string[];
  writes: string[];
}

/** GET graph?path= (records.StageGraph): the notebook's stage graph and its pre-flight problems. */
export interface IStageGraph {
  notebook: string;
  stages: IGraphStage[];
  edges: { from: string; to: string; names: string[] }[];
  problems: { stage: string; detail: string }[];
  parameters: Record<string, unknown>;
}

/** Every error answer (records.Error); a refused promotion (409) adds the PromotionResult fields. */
export interface IApiError {
  error: string;
  message: string;
  gates?: IGateResult[];
}

/** records.GateResult */
export interface IGateResult {
  name: string;
  ok: boolean;
  message: string;
}

/** POST models/NAME/promote (records.PromotionResult). */
export interface IPromotionResult {
  name: string;
  version: string | null;
  alias: string;
  promoted: boolean;
  model: string;
  gates: IGateResult[];
  previous_version: string | null;
  alias_version: string | null;
}

/** A live stage event on jupyter_server's event bus (records.StageEvent), sent at a stage's start and end. */
export interface IStageEvent {
  notebook: string | null;
  stage: string;
  status: string;
  cache_hit: boolean;
  duration_s: number | null;
  run_id: string | null;
  run_key: string;
  parent_key: string | null;
  metrics: Record<string, number>;
  time: number;
}

/** The settings of schema/plugin.json. */
export interface ISettings {
  refreshSeconds: number;
  headlineMetrics: string[];
  pageSize: number;
}
