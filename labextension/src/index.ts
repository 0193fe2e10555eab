/**
 * jupyter-guildimg: the runs of the server extension's monitor and their
 * captured images in a left sidebar, image tabs with their history, and
 * TensorBoard in a tab. Works in JupyterLab 4 and Notebook 7 (every token but
 * the application is optional).
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  MainAreaWidget,
  ToolbarButton,
  WidgetTracker
} from '@jupyterlab/apputils';
import { IStateDB } from '@jupyterlab/statedb';
import { LabIcon, launchIcon, refreshIcon } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject, UUID } from '@lumino/coreutils';

import { GuildImgModel } from './model';
import { GuildImgSidebar, ISidebarState } from './sidebar';
import { TensorBoardView } from './tensorboard';
import { ImageViewer, IViewerArgs } from './viewer';
import { activateWorkbench } from './workbench-plugin';

namespace CommandIDs {
  export const openTensorBoard = 'guildimg:open-tensorboard';
  export const refresh = 'guildimg:refresh';
  export const openImage = 'guildimg:open-image';
  export const showSidebar = 'guildimg:show-sidebar';
  /** The image workbench's (its own module registers it, when it is there). */
  export const compareRuns = 'guildimg:compare-runs';
}

const PLUGIN_ID = 'jupyter-guildimg:plugin';
const STATE_KEY = `${PLUGIN_ID}:sidebar`;
const CATEGORY = 'Guild Images';

/** A picture frame with a mountain and a sun. */
export const guildImgIcon = new LabIcon({
  name: 'jupyter-guildimg:icon',
  svgstr: `<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 4h18a1 1 0 0 1 1 1v14a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1zm1 2v9.6l4.3-4.3 3.2 3.2 2.7-2.7L20 17.6V6H4z"/>
    <circle cx="16" cy="9" r="1.8"/>
  </g>
</svg>`
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'Runs and their captured images in a sidebar; TensorBoard in a tab.',
  autoStart: true,
  optional: [ILayoutRestorer, ICommandPalette, IStateDB],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    stateDB: IStateDB | null
  ) => {
    const model = new GuildImgModel();
    const { commands, shell } = app;
    const images = new WidgetTracker<MainAreaWidget<ImageViewer>>({
      namespace: 'guildimg-image'
    });
    const tensorBoards = new WidgetTracker<MainAreaWidget<TensorBoardView>>({
      namespace: 'guildimg-tensorboard'
    });

    const sidebar = new GuildImgSidebar(model, {
      openImage: (runId, path) =>
        void commands.execute(CommandIDs.openImage, { runId, path }),
      openTensorBoard: () => void commands.execute(CommandIDs.openTensorBoard),
      stateChanged: state => void stateDB?.save(STATE_KEY, { ...state }),
      canCompare: () => commands.hasCommand(CommandIDs.compareRuns),
      compare: runs => void commands.execute(CommandIDs.compareRuns, { runs })
    });
    commands.commandChanged.connect((_, change) => {
      if (change.id === CommandIDs.compareRuns) {
        sidebar.updateActions();
      }
    });
    sidebar.title.icon = guildImgIcon;
    shell.add(sidebar, 'left', { rank: 700 });

    // Until the saved layout is restored, the commands the restorer runs re-create tabs.
    let restoring = true;
    void app.restored.then(() => {
      restoring = false;
    });

    commands.addCommand(CommandIDs.openTensorBoard, {
      label: 'Guild Images: Open TensorBoard',
      caption: 'TensorBoard on the watched runs, in a tab (started if needed)',
      execute: () => {
        const open = tensorBoards.currentWidget;
        if (open) {
          shell.activateById(open.id);
          return open;
        }
        const widget = new MainAreaWidget({
          content: new TensorBoardView(
            model,
            () => {
              shell.activateById(sidebar.id);
              sidebar.focusRuns();
            },
            app.restored
          )
        });
        widget.id = 'guildimg-tensorboard-tab';
        widget.title.icon = guildImgIcon;
        widget.toolbar.addItem(
          'reload',
          new ToolbarButton({
            icon: refreshIcon,
            tooltip: 'Reload TensorBoard',
            onClick: () => widget.content.reload()
          })
        );
        widget.toolbar.addItem(
          'new-tab',
          new ToolbarButton({
            icon: launchIcon,
            tooltip: 'Open TensorBoard in a new browser tab',
            onClick: () =>
              window.open(model.api.tensorBoardUrl, '_blank', 'noopener')
          })
        );
        void tensorBoards.add(widget);
        // A tab restored with the page stays where the layout puts it: added in the
        // front for a moment, it would be shown and so start TensorBoard.
        shell.add(widget, 'main', { activate: !restoring });
        return widget;
      }
    });

    commands.addCommand(CommandIDs.refresh, {
      label: 'Guild Images: Refresh runs',
      caption: 'Run a monitor pass now and show what it found',
      execute: () => model.refresh()
    });

    commands.addCommand(CommandIDs.showSidebar, {
      label: 'Guild Images: Show runs',
      execute: () => shell.activateById(sidebar.id)
    });

    commands.addCommand(CommandIDs.openImage, {
      label: args => `Open ${args.path ?? 'image'}`,
      execute: args => {
        const { runId, path, compare } = args as unknown as IViewerArgs;
        const open = images.find(
          widget =>
            widget.content.path === path && widget.content.runIds[0] === runId
        );
        if (open) {
          shell.activateById(open.id);
          return open;
        }
        const content = new ImageViewer(model, path, [
          runId,
          ...(compare ?? [])
        ]);
        const widget = new MainAreaWidget({ content });
        widget.id = `guildimg-image-${UUID.uuid4()}`;
        widget.title.icon = guildImgIcon;
        content.argsChanged.connect(() => void images.save(widget));
        void images.add(widget);
        shell.add(widget, 'main');
        return widget;
      }
    });

    if (palette) {
      for (const command of [
        CommandIDs.openTensorBoard,
        CommandIDs.refresh,
        CommandIDs.showSidebar
      ]) {
        palette.addItem({ command, category: CATEGORY });
      }
    }

    if (restorer) {
      restorer.add(sidebar, sidebar.id);
      void restorer.restore(tensorBoards, {
        command: CommandIDs.openTensorBoard,
        name: () => 'tensorboard'
      });
      void restorer.restore(images, {
        command: CommandIDs.openImage,
        args: widget =>
          ({ ...widget.content.args }) as ReadonlyPartialJSONObject,
        name: widget => widget.content.args.runId + ':' + widget.content.path
      });
    }

    if (stateDB) {
      void app.restored
        .then(() => stateDB.fetch(STATE_KEY))
        .then(saved => {
          if (saved) {
            sidebar.restore(saved as unknown as ISidebarState);
          }
        });
    }

    activateWorkbench(app, model, restorer, palette);
    model.start();
  }
};

export default plugin;
