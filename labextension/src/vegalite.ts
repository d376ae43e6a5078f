import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';
import { clear, errorBox } from './dom';

export const VEGALITE = 'application/vnd.vegalite.v5+json';

/**
 * One Vega-Lite chart of a panel (its spec built by the server), drawn with JupyterLab's own renderer: drawing
 * again replaces the chart before; a JupyterLab without the renderer, or a spec it refuses, shows the error.
 */
export class VegaLiteChart {
  private _renderer: Widget | null = null;

  constructor(private _rendermime: IRenderMimeRegistry | null) {}

  async drawInto(host: HTMLElement, spec: Record<string, unknown>, metadata: Record<string, unknown> = {}): Promise<void> {
    const rendermime = this._rendermime;
    try {
      if (!rendermime || !rendermime.mimeTypes.includes(VEGALITE)) {
        throw new Error('JupyterLab has no Vega-Lite renderer enabled (the @jupyterlab/vega5-extension).');
      }
      this.dispose();
      const renderer = rendermime.createRenderer(VEGALITE);
      const model = rendermime.createModel({ data: { [VEGALITE]: spec as any }, metadata: metadata as any, trusted: true });
      clear(host);
      Widget.attach(renderer, host);
      this._renderer = renderer;
      await renderer.renderModel(model);
      host.dataset.drawn = 'true';
    } catch (error) {
      clear(host);
      host.appendChild(errorBox(error));
    }
  }

  dispose(): void {
    if (this._renderer) {
      this._renderer.dispose();
      this._renderer = null;
    }
  }
}
