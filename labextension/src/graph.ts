import { append, clear, h } from './dom';
import { query, requestAPI } from './handler';
import { IStageState, isOver } from './stages';
import { IGraphStage, IStageGraph } from './tokens';

const SVG_NS = 'http://www.w3.org/2000/svg';
const NODE_H = 50;
const LAYER_GAP = 34; // room for one edge label between two layers
const GAP = 12;
const DUMMY_W = 14; // the slot an edge takes where it passes a layer it does not stop in
const PAD = 8;
const CHAR_PX = 6.2; // about one character of the sidebar's small font

function svg(tag: string, attrs: Record<string, string | number> = {}, ...children: (Node | string)[]): SVGElement {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    node.setAttribute(key, String(value));
  }
  for (const child of children) {
    node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/** ``text`` cut to ``chars`` characters (an ellipsis marks the cut). */
function fit(text: string, chars: number): string {
  const n = Math.max(3, Math.floor(chars));
  return text.length <= n ? text : `${text.slice(0, n - 1)}…`;
}

interface Slot {
  name: string; // a node's name, or '' for an edge passing through
  layer: number;
  x: number;
  w: number;
}

interface Layout {
  width: number;
  height: number;
  nodes: Map<string, Slot>;
  /** Per edge (index in graph.edges): the slots it passes through between its ends. */
  through: Slot[][];
}

/**
 * A layered layout, top to bottom: each node one layer below the lowest node it reads from; an edge that
 * spans layers takes a narrow slot in each layer it crosses, so it never runs through a node; nodes of a
 * layer ordered by where their sources are (one barycentre pass), else in notebook order.
 */
export function layout(graph: IStageGraph, width: number): Layout {
  const order = new Map(graph.stages.map((s, i) => [s.name, i]));
  const layer = new Map<string, number>();
  for (const s of graph.stages) {
    let l = 0;
    for (const e of graph.edges) {
      // an edge up the notebook (a cycle the pre-flight check names) does not lift its target
      if (e.to === s.name && (order.get(e.from) ?? Infinity) < (order.get(s.name) ?? 0)) {
        l = Math.max(l, (layer.get(e.from) ?? 0) + 1);
      }
    }
    layer.set(s.name, l);
  }
  const depth = Math.max(0, ...layer.values()) + 1;
  const rows: Slot[][] = Array.from({ length: depth }, () => []);
  const nodes = new Map<string, Slot>();
  for (const s of graph.stages) {
    const slot = { name: s.name, layer: layer.get(s.name) ?? 0, x: 0, w: 0 };
    nodes.set(s.name, slot);
    rows[slot.layer].push(slot);
  }
  const through = graph.edges.map(e => {
    const [a, b] = [layer.get(e.from) ?? 0, layer.get(e.to) ?? 0];
    const passes: Slot[] = [];
    for (let l = a + 1; l < b; l++) {
      const slot = { name: '', layer: l, x: 0, w: DUMMY_W };
      rows[l].push(slot);
      passes.push(slot);
    }
    return passes;
  });
  // node width: the widest layer's nodes share the width, within readable bounds
  let nodeW = 170;
  for (const row of rows) {
    const real = row.filter(s => s.name).length;
    const dummies = row.length - real;
    if (real) {
      nodeW = Math.min(nodeW, (width - 2 * PAD - GAP * (row.length - 1) - dummies * DUMMY_W) / real);
    }
  }
  nodeW = Math.max(96, Math.floor(nodeW));
  const rank = new Map<Slot, number>();
  rows.forEach((row, l) => {
    const sources = (slot: Slot): Slot[] => {
      if (!slot.name) {
        const i = through.findIndex(p => p.includes(slot));
        const j = through[i].indexOf(slot);
        return [j > 0 ? through[i][j - 1] : nodes.get(graph.edges[i].from)!];
      }
      return graph.edges.map((e, i) => (e.to === slot.name ? (through[i].length ? through[i][through[i].length - 1] : nodes.get(e.from)!) : null)).filter((s): s is Slot => s !== null && s.layer === l - 1);
    };
    const key = (slot: Slot, i: number) => {
      const src = sources(slot).map(s => rank.get(s) ?? 0);
      return src.length ? src.reduce((a, b) => a + b, 0) / src.length : i;
    };
    const keyed = row.map((slot, i) => ({ slot, k: l === 0 ? i : key(slot, i), i }));
    keyed.sort((a, b) => a.k - b.k || a.i - b.i);
    row.splice(0, row.length, ...keyed.map(k => k.slot));
    row.forEach((slot, i) => {
      rank.set(slot, i);
      if (slot.name) {
        slot.w = nodeW;
      }
    });
  });
  const widths = rows.map(row => row.reduce((a, s) => a + s.w, 0) + GAP * Math.max(0, row.length - 1));
  const total = Math.max(width, ...widths.map(w => w + 2 * PAD));
  rows.forEach((row, l) => {
    let x = (total - widths[l]) / 2;
    for (const slot of row) {
      slot.x = x;
      x += slot.w + GAP;
    }
  });
  return { width: total, height: depth * NODE_H + (depth - 1) * LAYER_GAP + 2 * PAD, nodes, through };
}

const top = (l: number) => PAD + l * (NODE_H + LAYER_GAP);

/** How a node is shown: its state in the Stages view (the notebook's latest run, live events). */
function describe(node: IGraphStage, s: IStageState | undefined): { status: string; text: string } {
  if (node.kind === 'cell') {
    return { status: 'CELL', text: 'cell, runs every time' };
  }
  if (!s) {
    return { status: 'NONE', text: '○ not run yet' };
  }
  if (s.status === 'FINISHED') {
    return { status: s.status, text: s.cache_hit ? '✓ cache hit' : '✓ ran' };
  }
  if (!isOver(s.status)) {
    return { status: s.status, text: s.status === 'QUEUED' ? '… queued' : '● running' };
  }
  return { status: s.status, text: `✗ ${s.status.toLowerCase()}` };
}

/** The stage graph of the notebook as an SVG: nodes with their state, edges labelled with what they carry. */
export function drawGraph(graph: IStageGraph, width: number, state: (stage: string) => IStageState | undefined): SVGElement {
  const placed = layout(graph, width);
  const root = svg('svg', {
    class: 'mlops-nb-graph-svg',
    width: placed.width,
    height: placed.height,
    viewBox: `0 0 ${placed.width} ${placed.height}`,
    role: 'img'
  });
  const words = graph.edges.map(e => `${e.from} to ${e.to} (${e.names.join(', ')})`);
  root.setAttribute('aria-label', `Stage graph: ${graph.stages.length} nodes; ${words.join('; ') || 'no edges'}`);
  root.appendChild(
    svg('defs', {}, svg('marker', { id: 'mlops-nb-arrow', viewBox: '0 0 8 8', refX: 7, refY: 4, markerWidth: 7, markerHeight: 7, orient: 'auto' }, svg('path', { d: 'M0,0 L8,4 L0,8 z', class: 'mlops-nb-graph-arrow' })))
  );
  // where each edge leaves its source and enters its target: spread along the node's side
  const spread = (names: string[], slot: Slot, name: string) => slot.x + (slot.w * (names.indexOf(name) + 1)) / (names.length + 1);
  const edgesG = svg('g', {});
  const labelsG = svg('g', {});
  const labels: { el: SVGElement; x: number; layer: number; text: string }[] = [];
  graph.edges.forEach((e, i) => {
    const from = placed.nodes.get(e.from);
    const to = placed.nodes.get(e.to);
    if (!from || !to) {
      return;
    }
    const outs = graph.edges.filter(x => x.from === e.from).map(x => x.to);
    const ins = graph.edges.filter(x => x.to === e.to).map(x => x.from);
    const points: [number, number, number][] = [[spread(outs, from, e.to), top(from.layer) + NODE_H, top(to.layer)]];
    for (const p of placed.through[i]) {
      points.push([p.x + p.w / 2, top(p.layer), top(p.layer) + NODE_H]);
    }
    points.push([spread(ins, to, e.from), top(to.layer), 0]);
    let d = `M${points[0][0]},${points[0][1]}`;
    for (let k = 1; k < points.length; k++) {
      const [x0, y0] = [points[k - 1][0], points[k - 1][1] + (k > 1 ? NODE_H : 0)];
      const [x1, y1] = [points[k][0], points[k][1]];
      const m = (y0 + y1) / 2;
      d += `${k > 1 ? ` L${x0},${y0}` : ''} C${x0},${m} ${x1},${m} ${x1},${y1}`;
    }
    const backwards = to.layer <= from.layer;
    const text = e.names.join(', ');
    const g = svg('g', { class: 'mlops-nb-graph-edge', 'data-from': e.from, 'data-to': e.to, 'data-names': text }, svg('title', {}, `${e.from} → ${e.to}: ${text}`));
    g.appendChild(svg('path', { d, class: backwards ? 'mlops-nb-graph-line mlops-nb-graph-back' : 'mlops-nb-graph-line', 'marker-end': 'url(#mlops-nb-arrow)' }));
    edgesG.appendChild(g);
    const next = points[1];
    const lx = (points[0][0] + next[0]) / 2;
    const el = svg('text', { x: lx, y: top(from.layer) + NODE_H + LAYER_GAP / 2 + 4, class: 'mlops-nb-graph-label', 'text-anchor': 'middle', 'data-from': e.from, 'data-to': e.to });
    labels.push({ el, x: lx, layer: from.layer, text });
    labelsG.appendChild(el);
  });
  // each label gets the room up to its neighbours in the same gap between layers
  for (const label of labels) {
    const others = labels.filter(l => l !== label && l.layer === label.layer).map(l => Math.abs(l.x - label.x));
    const room = Math.min(placed.width - 2 * PAD, ...others);
    label.el.textContent = fit(label.text, room / CHAR_PX - 1);
  }
  const nodesG = svg('g', {});
  for (const node of graph.stages) {
    const slot = placed.nodes.get(node.name)!;
    const s = state(node.name);
    const shown = describe(node, s);
    const y = top(slot.layer);
    const chars = (slot.w - 12) / CHAR_PX;
    const details = [
      node.inputs.length ? `reads ${node.inputs.join(', ')}` : '',
      node.outputs.length ? `makes ${node.outputs.join(', ')}` : '',
      node.params.length ? `parameters ${node.params.join(', ')}` : '',
      node.files.length ? `reads files ${node.files.join(', ')}` : '',
      node.writes.length ? `writes files ${node.writes.join(', ')}` : ''
    ].filter(Boolean);
    const g = svg(
      'g',
      {
        class: 'mlops-nb-graph-node',
        'data-stage': node.name,
        'data-kind': node.kind,
        'data-status': shown.status,
        'data-cache-hit': String(Boolean(s?.cache_hit))
      },
      svg('title', {}, [`${node.kind === 'cell' ? 'cell' : 'stage'} ${node.name} (cell ${node.cell}): ${shown.text}`, ...details].join('\n')),
      svg('rect', { x: slot.x, y, width: slot.w, height: NODE_H, rx: 5, class: 'mlops-nb-graph-box' }),
      svg('text', { x: slot.x + 6, y: y + 15, class: 'mlops-nb-graph-name' }, fit(node.name, chars - 1)),
      svg('text', { x: slot.x + 6, y: y + 29, class: 'mlops-nb-graph-state' }, fit(shown.text, chars))
    );
    const extra = node.params.length ? `params: ${node.params.join(', ')}` : node.writes.length ? `writes: ${node.writes.join(', ')}` : '';
    if (extra) {
      g.appendChild(svg('text', { x: slot.x + 6, y: y + 43, class: 'mlops-nb-graph-params' }, fit(extra, chars)));
    }
    nodesG.appendChild(g);
  }
  root.append(edgesG, nodesG, labelsG);
  return root;
}

function literal(value: unknown): string {
  return value === null || value === undefined ? '(not a literal)' : JSON.stringify(value);
}

/**
 * The Stages view's graph section: the notebook's stage graph from `GET graph?path=` (read from the saved
 * file), drawn with each stage's state from the Stages view, its parameters and the pre-flight problems.
 */
export class GraphView {
  readonly node = h('section', { className: 'mlops-nb-graph', 'aria-label': 'Stage graph' });
  private _graph: IStageGraph | null = null;
  private _error: string | null = null;
  private _path: string | null = null;
  private _width = 0;
  private _state: (stage: string) => IStageState | undefined = () => undefined;
  private _observer = new ResizeObserver(() => {
    if (Math.abs(this.node.clientWidth - this._width) > 16) {
      this._render();
    }
  });

  constructor() {
    this._observer.observe(this.node);
  }

  /** Show the graph of ``path``: re-read from the server when the path changed or ``reload``. */
  async show(path: string, state: (stage: string) => IStageState | undefined, reload: boolean): Promise<void> {
    this._state = state;
    if (path !== this._path || reload || (!this._graph && !this._error)) {
      if (path !== this._path) {
        [this._path, this._graph, this._error] = [path, null, null];
        this._render();
      }
      try {
        const graph = await requestAPI<IStageGraph>(`graph${query({ path })}`);
        if (path === this._path) {
          [this._graph, this._error] = [graph, null];
        }
      } catch (error) {
        if (path === this._path) {
          [this._graph, this._error] = [null, error instanceof Error ? error.message : String(error)];
        }
      }
    }
    this._render();
  }

  private _render(): void {
    const host = this.node;
    clear(host);
    this._width = host.clientWidth;
    host.appendChild(h('h3', { className: 'mlops-nb-graph-title' }, 'Graph', h('span', { className: 'mlops-nb-dim' }, ' · from the saved notebook')));
    const graph = this._graph;
    if (!graph) {
      host.appendChild(h('p', { className: 'mlops-nb-dim' }, this._error ? `No graph: ${this._error}` : 'reading the graph…'));
      host.dataset.drawn = this._error ? 'error' : 'loading';
      return;
    }
    if (!graph.stages.length) {
      host.appendChild(h('p', { className: 'mlops-nb-dim' }, 'No stage in the saved notebook yet.'));
      host.dataset.drawn = 'empty';
      return;
    }
    host.appendChild(h('div', { className: 'mlops-nb-graph-canvas' }, drawGraph(graph, Math.max(200, this._width - 4), this._state) as unknown as HTMLElement));
    const params = Object.entries(graph.parameters);
    if (params.length) {
      const list = h('p', { className: 'mlops-nb-graph-parameters' }, h('b', {}, 'Parameters '));
      params.forEach(([name, value], i) => append(list, i ? ', ' : '', h('code', { 'data-param': name }, `${name} = ${literal(value)}`)));
      host.appendChild(list);
    }
    const problems = h('div', { className: 'mlops-nb-preflight', 'data-problems': String(graph.problems.length) });
    if (graph.problems.length) {
      append(
        problems,
        h('p', { className: 'mlops-nb-preflight-bad' }, `✗ The pre-flight check found ${graph.problems.length} problem(s): these stages cannot run apart (mlops-nb run --stage, export-pipeline).`),
        h('ul', {}, ...graph.problems.map(p => h('li', { 'data-stage': p.stage }, h('b', {}, p.stage), `: ${p.detail}`)))
      );
    } else {
      problems.appendChild(h('p', { className: 'mlops-nb-ok' }, '✓ The pre-flight check found no problem: each stage can run on its own.'));
    }
    host.appendChild(problems);
    host.dataset.drawn = 'true';
  }

  dispose(): void {
    this._observer.disconnect();
  }
}
