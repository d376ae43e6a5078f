import { Cell, ICellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { h, seconds, statusIcon, when } from './dom';
import { IStageState, StageStore, isOver, trackedStage } from './stages';

const BADGE = 'mlops-nb-cell-badge';

/** The badge text: status, cache hit, duration. */
function label(state: IStageState | undefined): string {
  if (!state) {
    return 'not run yet';
  }
  const parts = [`${statusIcon(state.status)} ${state.status}`];
  if (state.cache_hit) {
    parts.push('cache hit');
  }
  if (state.duration_s !== null && isOver(state.status)) {
    parts.push(seconds(state.duration_s));
  }
  if (state.earlier) {
    // not run in this session: say which run it is from (a CLI job's, yesterday's kernel's)
    parts.push(`earlier ${state.earlier.kind ?? ''} run ${state.earlier.run_id.slice(0, 8)}, ${when(state.earlier.start_time)}`.replace('  ', ' '));
  }
  return parts.join(' · ');
}

/** Put, update or remove the badge of one cell from the store. */
export function renderBadge(cell: Cell<ICellModel>, path: string, store: StageStore): void {
  const stage = cell.model.type === 'code' ? trackedStage(cell.model.sharedModel.getSource()) : null;
  let badge = cell.node.querySelector<HTMLElement>(`:scope > .${BADGE}`);
  if (stage === null) {
    badge?.remove();
    return;
  }
  if (!badge) {
    badge = h('div', { className: BADGE, role: 'status', 'aria-live': 'polite' });
    const input = cell.node.querySelector(':scope > .jp-Cell-inputWrapper');
    cell.node.insertBefore(badge, input ? input.nextSibling : null);
  }
  const state = store.stage(path, stage);
  const status = state?.status ?? 'NONE';
  const hit = state ? String(state.cache_hit) : 'false';
  const text = `${stage}: ${label(state)}`;
  const earlier = String(Boolean(state?.earlier));
  // Only touch the DOM when something changed: thousands of cells re-render on every event otherwise.
  if (badge.dataset.status !== status || badge.dataset.cacheHit !== hit || badge.textContent !== text || badge.dataset.earlier !== earlier) {
    badge.dataset.stage = stage;
    badge.dataset.status = status;
    badge.dataset.cacheHit = hit;
    badge.dataset.earlier = earlier;
    badge.textContent = text;
    badge.title = state?.run_id ? `stage ${stage}, MLflow run ${state.run_id}` : `stage ${stage}`;
  }
}

/** Every %%track cell of a notebook panel. */
export function renderBadges(panel: NotebookPanel, store: StageStore): void {
  const path = panel.context.path;
  for (const cell of panel.content.widgets) {
    renderBadge(cell, path, store);
  }
}
