/**
 * The workbench in JupyterLab: the `guildimg:compare-runs` command, its tabs
 * restored with the layout, and links (`?guildimg-compare=<state>`) opened at
 * start-up. `activateWorkbench` is called from the extension's plugin.
 */
import { ILayoutRestorer, JupyterFrontEnd } from '@jupyterlab/application';
import {
  ICommandPalette,
  MainAreaWidget,
  WidgetTracker
} from '@jupyterlab/apputils';
import { ReadonlyPartialJSONObject, UUID } from '@lumino/coreutils';

import '../style/workbench.css';
import { GuildImgModel } from './model';
import { Workbench } from './workbench';
import {
  decodeState,
  IWorkbenchState,
  LINK_PARAM,
  parseState
} from './workbench-state';

export const COMPARE_COMMAND = 'guildimg:compare-runs';

let opener: ((runs: string[], path: string) => void) | null = null;

/** Open the workbench on `runs` and `path` (false when it is not registered). */
export function openWorkbench(runs: string[], path: string): boolean {
  if (!opener) {
    return false;
  }
  opener(runs, path);
  return true;
}

export function activateWorkbench(
  app: JupyterFrontEnd,
  model: GuildImgModel,
  restorer: ILayoutRestorer | null,
  palette: ICommandPalette | null
): void {
  const { commands, shell } = app;
  const tracker = new WidgetTracker<MainAreaWidget<Workbench>>({
    namespace: 'guildimg-workbench'
  });

  const open = (state: IWorkbenchState): MainAreaWidget<Workbench> => {
    const content = new Workbench(model, state);
    const widget = new MainAreaWidget({ content });
    widget.id = `guildimg-workbench-${UUID.uuid4()}`;
    widget.addClass('guildimg-wb-tab');
    let saving = 0;
    content.stateChanged.connect(() => {
      // Zoom and pan change the state at every mouse move: save once it rests.
      clearTimeout(saving);
      saving = window.setTimeout(() => void tracker.save(widget), 300);
    });
    void tracker.add(widget);
    shell.add(widget, 'main');
    shell.activateById(widget.id);
    content.node.focus();
    return widget;
  };

  commands.addCommand(COMPARE_COMMAND, {
    label: 'Guild Images: Compare images of runs',
    caption:
      'The same image of several runs side by side, one revision slider for ' +
      'all, swipe, blink and difference views',
    execute: args => open(parseState(args))
  });
  opener = (runs, path) =>
    void commands.execute(COMPARE_COMMAND, { runs, path });

  if (palette) {
    palette.addItem({ command: COMPARE_COMMAND, category: 'Guild Images' });
  }
  if (restorer) {
    void restorer.restore(tracker, {
      command: COMPARE_COMMAND,
      args: widget =>
        ({ ...widget.content.state }) as unknown as ReadonlyPartialJSONObject,
      name: widget =>
        `${widget.content.state.runs.join(',')}:${widget.content.state.path}`
    });
  }

  // A shared link: read it now (before the router rewrites the URL), open it
  // once the layout is restored, and take it out of the address bar.
  const url = new URL(window.location.href);
  const linked = url.searchParams.get(LINK_PARAM);
  if (linked !== null) {
    url.searchParams.delete(LINK_PARAM);
    window.history.replaceState(window.history.state, '', url.toString());
    const state = decodeState(linked);
    void app.restored.then(() => {
      if (state) {
        open(state);
      }
    });
  }
}
