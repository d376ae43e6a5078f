import { Widget } from '@lumino/widgets';
import { requestAPI } from './handler';
import { IServerStatus } from './tokens';

/** The status-bar item: the experiment and the tracking URI (redacted by the server) this JupyterLab reads. */
export class StatusItem extends Widget {
  status: IServerStatus | null = null;
  private _notebook: string | null = null;

  /** The experiment a notebook records to: the configured one, else the notebook's name (its stem). */
  set notebook(path: string | null) {
    this._notebook = path;
    this._render();
  }

  constructor() {
    super();
    this.addClass('mlops-nb-status-item');
    this.node.textContent = 'MLflow: …';
  }

  async load(): Promise<IServerStatus | null> {
    try {
      this.status = await requestAPI<IServerStatus>('status');
      this.node.dataset.state = 'ok';
      this._render();
    } catch (error) {
      this.node.textContent = 'MLflow: server extension not answering';
      this.node.title = `${(error as Error).message}. Check "jupyter server extension list" shows mlops_nb enabled.`;
      this.node.dataset.state = 'error';
    }
    return this.status;
  }

  private _render(): void {
    if (!this.status) {
      return;
    }
    const stem = this._notebook?.split('/').pop()?.replace(/\.ipynb$/, '') ?? null;
    const experiment = this.status.experiment ?? stem ?? '(each notebook its own)';
    this.node.textContent = `MLflow: ${experiment} @ ${this.status.tracking_uri}`;
    this.node.title =
      `mlops-nb ${this.status.version} records to experiment "${experiment}" at ${this.status.tracking_uri}` +
      (this.status.experiment ? '' : ' (no experiment configured: each notebook records to one named after it)');
  }
}
