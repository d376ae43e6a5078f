/**
 * The run comparison chart, a line-by-line copy of mlops_nb/widgets/charts.py (`compare_spec`): the same
 * Vega-Lite v5 spec for the same runs, built here from the runs the sidebar already holds (no round trip for
 * a chart of hundreds of runs). tests/unit/test_charts.py runs both on the same runs and checks that the
 * specs are equal: change both together.
 */
import { IRunSummary } from './tokens';

export const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';
const MAX_AXES = 12;
const MAX_RUNS = 5000;
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

type Kind = 'param' | 'metric';

function toNumber(value: unknown): number | null {
  if (typeof value === 'string') {
    if (!NUMBER.test(value.trim())) {
      return null;
    }
    value = Number(value.trim());
  }
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function numericParams(runs: IRunSummary[]): string[] {
  const names = [...new Set(runs.flatMap(r => Object.keys(r.params)))].sort(byCodePoint);
  return names.filter(name => {
    const numbers = runs.filter(r => name in r.params).map(r => toNumber(r.params[name]));
    return numbers.every(n => n !== null) && new Set(numbers).size > 1;
  });
}

function label(run: IRunSummary): string {
  return `${run.name || run.run_id.slice(0, 8)} (${run.run_id.slice(0, 8)})`;
}

export function compareSpec(allRuns: IRunSummary[], params?: string[], metrics?: string[]): Record<string, unknown> {
  const runs = allRuns.slice(0, MAX_RUNS);
  const ps = params ?? numericParams(runs);
  const ms = metrics ?? [...new Set(runs.flatMap(r => Object.keys(r.metrics)))].sort(byCodePoint);
  const axes: [Kind, string][] = [...ps.map(p => ['param', p] as [Kind, string]), ...ms.map(m => ['metric', m] as [Kind, string])].slice(0, MAX_AXES);

  const value = (run: IRunSummary, kind: Kind, name: string): number | null =>
    toNumber(kind === 'param' ? run.params[name] : run.metrics[name]);

  const lines: Record<string, unknown>[] = [];
  axes.forEach(([kind, name], order) => {
    const values = runs.map(r => value(r, kind, name)).filter((v): v is number => v !== null);
    const [low, high] = values.length ? [Math.min(...values), Math.max(...values)] : [0, 0];
    for (const r of runs) {
      const v = value(r, kind, name);
      if (v === null) {
        continue;
      }
      const scaled = high === low ? 0.5 : (v - low) / (high - low);
      lines.push({ run: label(r), run_id: r.run_id, axis: name, kind, order, value: v, scaled });
    }
  });
  const points: Record<string, unknown>[] = [];
  for (const r of runs) {
    for (const p of ps) {
      for (const m of ms) {
        const x = value(r, 'param', p);
        const y = x === null ? null : value(r, 'metric', m);
        if (x !== null && y !== null) {
          points.push({ run: label(r), run_id: r.run_id, param: p, x, metric: m, y });
        }
      }
    }
  }
  const tooltip = [
    { field: 'run', type: 'nominal' },
    { field: 'axis', type: 'nominal' },
    { field: 'value', type: 'quantitative', format: '.4g' }
  ];
  const parallel = {
    title: 'Parallel coordinates (each axis scaled to its min..max)',
    data: { values: lines },
    width: Math.max(70 * axes.length, 200),
    height: 160,
    layer: [
      {
        mark: { type: 'line', opacity: 0.6, strokeWidth: 1.5 },
        encoding: {
          x: { field: 'axis', type: 'nominal', sort: { field: 'order' }, title: null },
          y: { field: 'scaled', type: 'quantitative', axis: null },
          detail: { field: 'run_id', type: 'nominal' },
          color: { field: 'run', type: 'nominal', legend: null },
          tooltip
        }
      },
      {
        mark: { type: 'point', filled: true, size: 30 },
        encoding: {
          x: { field: 'axis', type: 'nominal', sort: { field: 'order' } },
          y: { field: 'scaled', type: 'quantitative' },
          color: { field: 'run', type: 'nominal', legend: null },
          tooltip
        }
      }
    ]
  };
  const scatter = {
    title: 'Metric vs parameter',
    data: { values: points },
    facet: {
      row: { field: 'metric', type: 'nominal', title: null },
      column: { field: 'param', type: 'nominal', title: null }
    },
    spec: {
      width: 120,
      height: 100,
      mark: { type: 'point', filled: true, size: 50 },
      encoding: {
        x: { field: 'x', type: 'quantitative', scale: { zero: false }, title: 'parameter' },
        y: { field: 'y', type: 'quantitative', scale: { zero: false }, title: 'metric' },
        color: { field: 'run', type: 'nominal', legend: null },
        tooltip: [
          { field: 'run', type: 'nominal' },
          { field: 'param', type: 'nominal' },
          { field: 'x', type: 'quantitative', format: '.4g' },
          { field: 'metric', type: 'nominal' },
          { field: 'y', type: 'quantitative', format: '.4g' }
        ]
      }
    },
    resolve: { scale: { x: 'independent', y: 'independent' } }
  };
  return {
    $schema: SCHEMA,
    description: `mlops-nb comparison of ${runs.length} runs`,
    config: { view: { stroke: null } },
    vconcat: points.length ? [parallel, scatter] : [parallel]
  };
}
