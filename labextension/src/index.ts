import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { lineFormIcon, listIcon } from '@jupyterlab/ui-components';
import { renderBadge, renderBadges } from './badges';
import { ComparisonPanel } from './comparison';
import { EvaluationPanel } from './evaluation';
import { Sidebar } from './sidebar';
import { StageStore, isOver, trackedStage } from './stages';
import { StatusItem } from './status';
import { StudiesSidebar, StudyPanel } from './studies';
import { ISettings, IStageEvent } from './tokens';

const PLUGIN = 'mlops-nb:plugin';
/** records.STAGE_EVENT_SCHEMA: the schema id of the server's live stage events. */
const STAGE_EVENT_SCHEMA = 'https://schema.jupyter.org/mlops_nb/stage/v1';
const TRACK = 'mlops-nb:track-cell';
const OPEN = 'mlops-nb:open-sidebar';
/** After a %%track cell ends, re-read the notebook this long later if no live event said how it ended. */
const FALLBACK_MS = 1500;
/** After the last stage event of a burst, wait this long before asking MLflow for the stage run ids. */
const RUN_ID_DELAY_MS = 3000;
/** How many times (3 s, 6 s, 9 s... apart) before the sidebar gives up until the next refresh. */
const RUN_ID_TRIES = 6;

const DEFAULTS: ISettings = { refreshSeconds: 30, headlineMetrics: ['accuracy', 'f1_macro'], pageSize: 100 };

/** A stage event of the server extension, from the jupyter_server event bus: its data, or null. */
function stageEvent(emission: Record<string, any>): IStageEvent | null {
  const schema = String(emission.schema_id ?? '');
  if (schema !== STAGE_EVENT_SCHEMA) {
    return null;
  }
  return typeof emission.stage === 'string' ? (emission as unknown as IStageEvent) : null;
}

/** A name for a new stage: the cell's first assigned or imported name, else stageN. */
function stageName(source: string, taken: Set<string>): string {
  const match = /^\s*(?:from\s+\S+\s+)?(?:import\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=/m.exec(source);
  let base = match ? match[1].toLowerCase() : 'stage';
  base = base.replace(/[^a-z0-9_]/g, '_').slice(0, 40) || 'stage';
  let name = base;
  for (let i = 2; taken.has(name); i++) {
    name = `${base}${i}`;
  }
  return name;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN,
  description: 'MLOps sidebar, %%track cell badges and status-bar item for mlops-nb.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ISettingRegistry, IRenderMimeRegistry, IStatusBar, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    settingRegistry: ISettingRegistry | null,
    rendermime: IRenderMimeRegistry | null,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null
  ) => {
    let settings: ISettings = { ...DEFAULTS };
    const store = new StageStore();
    const status = new StatusItem();
    const current = (): NotebookPanel | null => tracker.currentWidget;
    const stagesOf = (panel: NotebookPanel): string[] =>
      panel.content.widgets.map(c => (c.model.type === 'code' ? trackedStage(c.model.sharedModel.getSource()) : null)).filter((s): s is string => s !== null);
    const uiBase = (): string | null => {
      const uri = status.status?.tracking_uri ?? '';
      return /^https?:\/\//.test(uri) && !uri.includes('***') ? uri : null;
    };
    // The comparison opens in the main area, beside the notebook: the sidebar is too narrow for its chart.
    let comparison: ComparisonPanel | null = null;
    const compare = (runIds: string[]) => {
      if (!comparison || comparison.isDisposed) {
        comparison = new ComparisonPanel(rendermime, () => settings.headlineMetrics);
      }
      if (!comparison.isAttached) {
        app.shell.add(comparison, 'main', { mode: 'split-right' });
      }
      app.shell.activateById(comparison.id);
      void comparison.compare(runIds);
    };
    let evaluation: EvaluationPanel | null = null;
    const evaluate = (runId: string) => {
      if (!evaluation || evaluation.isDisposed) {
        evaluation = new EvaluationPanel();
      }
      if (!evaluation.isAttached) {
        app.shell.add(evaluation, 'main', { mode: 'split-right' });
      }
      app.shell.activateById(evaluation.id);
      void evaluation.showRun(runId);
    };
    const kernelBusy = (): boolean | null => {
      const kernel = current()?.sessionContext.session?.kernel;
      return kernel ? kernel.status === 'busy' : null;
    };
    const sidebar = new Sidebar({
      store,
      settings: () => settings,
      compare,
      evaluate,
      kernelBusy,
      notebook: () => {
        const panel = current();
        return panel ? { path: panel.context.path, stages: stagesOf(panel) } : null;
      },
      uiBase
    });
    sidebar.title.icon = listIcon;
    sidebar.title.label = 'MLOps';
    app.shell.add(sidebar, 'left', { rank: 600 });
    let study: StudyPanel | null = null;
    const studies = new StudiesSidebar(runId => {
      study = !study || study.isDisposed ? new StudyPanel(rendermime) : study;
      if (!study.isAttached) {
        app.shell.add(study, 'main', { mode: 'split-right' });
      }
      app.shell.activateById(study.id);
      void study.showStudy(runId);
    });
    studies.title.icon = lineFormIcon;
    app.shell.add(studies, 'left', { rank: 601 });

    // Badges: re-render a notebook's badges when its stages change, its cells change, or it opens.
    const panels = (): NotebookPanel[] => {
      const all: NotebookPanel[] = [];
      tracker.forEach(p => all.push(p));
      return all;
    };
    store.changed.connect((_, path) => {
      for (const panel of panels()) {
        if (panel.context.path === path) {
          renderBadges(panel, store);
        }
      }
    });
    tracker.widgetAdded.connect((_, panel) => {
      void panel.context.ready.then(() => {
        renderBadges(panel, store);
        void store.refresh(panel.context.path).catch(() => undefined);
        panel.content.model?.cells.changed.connect(() => requestAnimationFrame(() => renderBadges(panel, store)));
      });
      panel.content.activeCellChanged.connect(() => renderBadges(panel, store));
      // the graph is read from the saved file: re-read it once the notebook is saved
      panel.context.fileChanged.connect(() => panel === current() && sidebar.notebookSaved());
      // The header says "running" only while the kernel runs a cell: re-render when it goes busy or idle.
      panel.sessionContext.statusChanged.connect((_, kernelStatus) => {
        if (panel === current() && (kernelStatus === 'busy' || kernelStatus === 'idle')) {
          void sidebar.refresh(false);
        }
      });
    });
    tracker.currentChanged.connect(() => {
      const panel = current();
      status.notebook = panel?.context.path ?? null;
      if (panel) {
        void panel.context.ready.then(() => sidebar.refresh(true));
      } else {
        void sidebar.refresh(false);
      }
    });

    // Live: a cell queued marks its stage QUEUED; the server's stage events say when it starts and ends.
    const fallbacks = new Map<string, number>();
    NotebookActions.executionScheduled.connect((_, { notebook, cell }) => {
      const panel = panels().find(p => p.content === notebook);
      const stage = cell.model.type === 'code' ? trackedStage(cell.model.sharedModel.getSource()) : null;
      if (panel && stage) {
        store.markLocal(panel.context.path, stage, 'QUEUED');
      }
    });
    NotebookActions.executed.connect((_, { notebook, cell, success }) => {
      const panel = panels().find(p => p.content === notebook);
      const stage = cell.model.type === 'code' ? trackedStage(cell.model.sharedModel.getSource()) : null;
      if (!panel || !stage) {
        return;
      }
      const path = panel.context.path;
      if (!success) {
        store.markLocal(path, stage, 'FAILED');
      }
      window.clearTimeout(fallbacks.get(path));
      fallbacks.set(
        path,
        window.setTimeout(() => {
          const state = store.stage(path, stage);
          if (state?.local) {
            void store.refresh(path).catch(() => undefined);
          }
        }, FALLBACK_MS)
      );
    });
    const openPaths = () => panels().map(p => p.context.path);
    // Events come from the journals, before MLflow has the stage runs: re-read the notebook once things
    // settle, for the run ids (a few tries: the recorder sends in the background).
    const runIds = new Map<string, number>();
    const fillRunIds = (path: string, tries: number) => {
      window.clearTimeout(runIds.get(path));
      runIds.set(
        path,
        window.setTimeout(() => {
          void store
            .refresh(path)
            .catch(() => undefined)
            .then(() => {
              const missing = store.stages(path).some(s => isOver(s.status) && !s.run_id);
              if (missing && tries > 1) {
                fillRunIds(path, tries - 1);
              }
            });
        }, RUN_ID_DELAY_MS * (RUN_ID_TRIES + 1 - tries))
      );
    };
    app.serviceManager.events.stream.connect((_, emission) => {
      const data = stageEvent(emission as Record<string, any>);
      const path = data ? store.applyEvent(data, openPaths()) : null;
      if (path && data && data.status !== 'RUNNING' && !data.run_id) {
        fillRunIds(path, RUN_ID_TRIES);
      }
    });

    // The "Track this cell" command: cell toolbar, context menu, palette.
    app.commands.addCommand(TRACK, {
      label: 'Track this cell',
      caption: 'Make this cell a tracked, cached pipeline stage (inserts %%track NAME)',
      icon: args => (args.toolbar ? listIcon : undefined),
      isEnabled: () => current()?.content.activeCell?.model.type === 'code',
      isVisible: () => {
        const cell = current()?.content.activeCell;
        return !!cell && cell.model.type === 'code' && trackedStage(cell.model.sharedModel.getSource()) === null;
      },
      execute: () => {
        const panel = current();
        const cell = panel?.content.activeCell;
        if (!panel || !cell || cell.model.type !== 'code') {
          return;
        }
        const source = cell.model.sharedModel.getSource();
        if (trackedStage(source) !== null) {
          return;
        }
        const name = stageName(source, new Set(stagesOf(panel)));
        cell.model.sharedModel.setSource(`%%track ${name}\n${source}`);
        renderBadge(cell, panel.context.path, store);
      }
    });
    app.commands.addCommand(OPEN, {
      label: 'Show the MLOps sidebar',
      execute: () => {
        app.shell.activateById(sidebar.id);
        // a keyboard user lands in the sidebar: after the palette has closed and given the focus back
        window.setTimeout(() => sidebar.focusView(), 0);
      }
    });
    palette?.addItem({ command: TRACK, category: 'MLOps' });
    palette?.addItem({ command: OPEN, category: 'MLOps' });

    if (statusBar) {
      statusBar.registerStatusItem('mlops-nb:status', { item: status, align: 'left', rank: 50 });
    }
    void status.load().then(() => sidebar.refresh(false));

    let timer = 0;
    const schedule = () => {
      window.clearInterval(timer);
      if (settings.refreshSeconds > 0) {
        timer = window.setInterval(() => {
          if (sidebar.isVisible) {
            void sidebar.poll();
          }
        }, settings.refreshSeconds * 1000);
      }
    };
    if (settingRegistry) {
      void settingRegistry.load(PLUGIN).then(loaded => {
        const apply = () => {
          settings = { ...DEFAULTS, ...(loaded.composite as unknown as Partial<ISettings>) };
          schedule();
          void sidebar.refresh(false);
        };
        loaded.changed.connect(apply);
        apply();
      });
    } else {
      schedule();
    }
  }
};

export default plugin;
