import { append, clear, h } from './dom';

export const PICK_DELAY_MS = 300; // ticks within this time make one request

/**
 * The metric picker above the comparison chart: a checkbox per metric the compared runs have, in the server's
 * default order (the metrics the gates name first, then an evaluation's own, its worst slices, …), ticked for
 * those the chart draws. A metric just ticked goes first, so that it is drawn even when the chart is full (the
 * last one then is left out, and says so). A filter narrows a long list; "Default" goes back to the server's
 * choice, "None" unticks all. `onChange(metrics)` gets the ticked metrics in that order (null: the default)
 * once the user pauses; the panel redraws the chart with them and calls `show` with what the server drew.
 */
export class MetricPicker {
  readonly node: HTMLElement;
  private _boxes = new Map<string, HTMLInputElement>();
  private _order: string[] = []; // the metrics ticked, the latest first
  private _count: HTMLElement;
  private _timer = 0;

  constructor(
    private _available: string[],
    private _onChange: (metrics: string[] | null) => void
  ) {
    const filter = h('input', { type: 'search', className: 'jp-mod-styled mlops-nb-metric-filter', placeholder: 'filter metrics', 'aria-label': 'Filter the metrics' });
    const list = h('div', { className: 'mlops-nb-metric-choices', role: 'group', 'aria-label': 'Metrics on the chart' });
    for (const name of _available) {
      const box = h('input', { type: 'checkbox', value: name });
      box.addEventListener('change', () => {
        this._order = [...(box.checked ? [name] : []), ...this._order.filter(m => m !== name)];
        this._changed(this._order);
      });
      this._boxes.set(name, box);
      list.appendChild(h('label', { className: 'mlops-nb-metric-choice', 'data-metric': name, title: name }, box, ` ${name}`));
    }
    filter.addEventListener('input', () => {
      const words = filter.value.trim().toLowerCase();
      for (const label of Array.from(list.children) as HTMLElement[]) {
        label.hidden = !!words && !(label.dataset.metric ?? '').toLowerCase().includes(words);
      }
    });
    const reset = h('button', { type: 'button', className: 'jp-mod-styled mlops-nb-metric-default', title: 'The metrics the gates name first, as many as fit' }, 'Default');
    reset.addEventListener('click', () => this._changed(null));
    const none = h('button', { type: 'button', className: 'jp-mod-styled mlops-nb-metric-none' }, 'None');
    none.addEventListener('click', () => {
      this._boxes.forEach(box => (box.checked = false));
      this._order = [];
      this._changed([]);
    });
    this._count = h('span', { className: 'mlops-nb-dim mlops-nb-metric-count' });
    this.node = h(
      'fieldset',
      { className: 'mlops-nb-metric-picker' },
      h('legend', {}, 'Metrics on the chart'),
      h('div', { className: 'mlops-nb-toolbar' }, filter, reset, none, this._count),
      list
    );
  }

  /**
   * Tick the metrics drawn. `chosen`: the user chose them, so those left out (more axes than the chart has
   * room for) stay ticked and say so; by default only the drawn ones are ticked.
   */
  show(drawn: string[], leftOut: string[], chosen: boolean): void {
    this._order = chosen ? [...drawn, ...leftOut] : [...drawn];
    this._boxes.forEach((box, name) => {
      box.checked = this._order.includes(name);
      const label = box.parentElement as HTMLElement;
      label.dataset.drawn = String(drawn.includes(name));
      const note = label.querySelector('.mlops-nb-left-out');
      if (chosen && leftOut.includes(name) && !note) {
        label.appendChild(h('span', { className: 'mlops-nb-dim mlops-nb-left-out' }, ' (not drawn: too many axes)'));
      } else if (!(chosen && leftOut.includes(name)) && note) {
        note.remove();
      }
    });
    clear(this._count);
    const more = leftOut.length ? (chosen ? `, ${leftOut.length} left out: untick some` : `: tick others to draw them`) : '';
    append(this._count, `${drawn.length} of ${this._available.length} drawn${more}`);
  }

  dispose(): void {
    window.clearTimeout(this._timer);
  }

  private _changed(metrics: string[] | null): void {
    window.clearTimeout(this._timer);
    const picked = metrics === null ? null : [...metrics];
    this._timer = window.setTimeout(() => this._onChange(picked), PICK_DELAY_MS);
  }
}
