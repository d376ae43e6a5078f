/** Small DOM helpers: every text goes in through textContent or attributes, never as HTML. */

type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | null | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) {
      continue;
    }
    if (key === 'className') {
      node.className = String(value);
    } else {
      node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(node, ...children);
  return node;
}

export function append(node: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

export function clear(node: Node): void {
  while (node.firstChild) {
    node.removeChild(node.firstChild);
  }
}

/** A number as people read it: 4 significant digits, or an em dash when missing. */
export function num(value: number | null | undefined): string {
  if (value === null || value === undefined) {
    return '—';
  }
  if (!Number.isFinite(value)) {
    return String(value);
  }
  return Number.isInteger(value) && Math.abs(value) < 1e6 ? String(value) : value.toPrecision(4).replace(/\.?0+(e|$)/, '$1');
}

export function seconds(value: number | null | undefined): string {
  if (value === null || value === undefined) {
    return '—';
  }
  return value < 10 ? `${value.toFixed(2)} s` : value < 120 ? `${value.toFixed(1)} s` : `${(value / 60).toFixed(1)} min`;
}

export function when(ms: number | null | undefined): string {
  if (!ms) {
    return '—';
  }
  const d = new Date(ms);
  return `${d.toLocaleDateString()} ${d.toLocaleTimeString()}`;
}

/** Text for screen readers only (a column header whose column needs no visible title). */
export function srOnly(text: string): HTMLElement {
  return h('span', { className: 'mlops-nb-sr-only' }, text);
}

/** An empty state: what is missing and what to do about it. */
export function empty(what: string, todo: string): HTMLElement {
  return h('div', { className: 'mlops-nb-empty' }, h('p', { className: 'mlops-nb-empty-what' }, what), h('p', {}, todo));
}

export function errorBox(error: unknown): HTMLElement {
  const message = error instanceof Error ? error.message : String(error);
  return h('div', { className: 'mlops-nb-error', role: 'alert' }, message);
}

const STATUS_ICONS: Record<string, string> = {
  FINISHED: '✓',
  FAILED: '✗',
  RUNNING: '●',
  KILLED: '■',
  QUEUED: '…'
};

export function statusIcon(status: string): string {
  return STATUS_ICONS[status] ?? '?';
}

/** The link to a run in the MLflow UI when the tracking URI is an MLflow server, else the run id as code. */
export function runLink(uiBase: string | null, runId: string, experimentId?: string | null): HTMLElement {
  const code = h('code', {}, runId.slice(0, 8));
  if (!uiBase) {
    return h('span', { title: `MLflow run ${runId} (start \`mlflow ui\` on this store to browse it)` }, code);
  }
  const path = experimentId ? `#/experiments/${encodeURIComponent(experimentId)}/runs/` : '#/runs/';
  return h(
    'a',
    {
      href: `${uiBase.replace(/\/+$/, '')}/${path}${encodeURIComponent(runId)}`,
      target: '_blank',
      rel: 'noopener noreferrer',
      title: `Open MLflow run ${runId}`
    },
    code
  );
}
