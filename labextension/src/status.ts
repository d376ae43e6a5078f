import { Widget } from '@lumino/widgets';
import { requestAPI } from './handler';
import { IServerStatus } from './tokens';

/** The status-bar item: the experiment and the tracking URI (redacted by the server) this JupyterLab reads. */
export class StatusItem extends Widget {
  status: IServerStatus | null = null;

  constructor() {
    super();
    this.addClass('mlops-nb-status-item');
    this.node.textContent = 'MLflow: …';
  }

  async load(): Promise<IServerStatus | null> {
    try {
      this.status = await requestAPI<IServerStatus>('status');
      const experiment = this.status.experiment ?? 'Default';
      this.node.textContent = `MLflow: ${experiment} @ ${this.status.tracking_uri}`;
      this.node.title = `mlops-nb records to experiment "${experiment}" at ${this.status.tracking_uri}`;
      this.node.dataset.state = 'ok';
    } catch (error) {
      this.node.textContent = 'MLflow: server extension not answering';
      this.node.title = `${(error as Error).message}. Check "jupyter server extension list" shows mlops_nb enabled.`;
      this.node.dataset.state = 'error';
    }
    return this.status;
  }
}
