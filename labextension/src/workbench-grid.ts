/**
 * The workbench's grid of runs: each cell drawn from its run's revision at the
 * slider, with what it shows written under it; and the export of the view.
 */
import { el } from './dom';
import { RunCell, when } from './workbench-cells';
import {
  composeTiles,
  crop,
  downloadPng,
  IExportTile,
  ITilePlace
} from './workbench-export';
import { drawFrame, IView, place } from './workbench-view';
import type { Workbench } from './workbench';

/** Draw a run's cell: its revision at the slider (the one drawn before until
 * that is decoded), its caption, or why there is nothing to show. */
export function drawCell(
  bench: Workbench,
  cell: RunCell,
  view: IView | null
): void {
  const surface = cell.surface;
  const context = surface.context();
  const side = bench.side(cell);
  const path = bench.state.path;
  if (!context) {
    return;
  }
  context.clearRect(0, 0, surface.canvas.width, surface.canvas.height);
  surface.node.classList.toggle('guildimg-mod-gone', cell.gone);
  if (!side || !view) {
    cell.shown = null;
    surface.caption.textContent = cell.error
      ? `${cell.name}: ${cell.error}`
      : bench.loaded
        ? `${cell.name}: no captured image ${path}`
        : `${cell.name}: loading…`;
    delete surface.node.dataset.revision;
    return;
  }
  const at = place(view, surface.canvas.width, surface.canvas.height);
  const bitmap = bench.sources.bitmap(side, at.width);
  if (bitmap) {
    cell.shown = { bitmap, revision: side.revision, index: side.index };
  }
  if (!cell.shown) {
    return;
  }
  drawFrame(context, cell.shown.bitmap, at);
  const { revision, index } = cell.shown;
  const total = cell.revisions(path).length;
  surface.caption.replaceChildren(
    el('strong', 'guildimg-wb-run', cell.name),
    el(
      'span',
      'guildimg-wb-rev',
      ` revision ${index + 1} of ${total} · ` +
        `${revision.width}×${revision.height} · ${when(revision)}`
    )
  );
  const data = surface.node.dataset;
  data.revision = String(revision.revision);
  data.index = String(index);
  data.time = String(revision.time);
}

/** The comparison as shown (the grid, or the pixel view), each image cropped
 * to itself and labelled with its run and revision, downloaded as a PNG. */
export async function exportComparison(bench: Workbench): Promise<void> {
  const state = bench.state;
  const view = bench.view();
  const visible = (canvas: HTMLCanvasElement): HTMLCanvasElement =>
    view ? crop(canvas, place(view, canvas.width, canvas.height)) : canvas;
  const tiles: IExportTile[] =
    state.mode === 'grid'
      ? bench.cells.map(cell => ({
          canvas: visible(cell.surface.canvas),
          lines: cell.shown
            ? [
                cell.name,
                `revision ${cell.shown.index + 1} · ` +
                  `${cell.shown.revision.width}×${cell.shown.revision.height}`
              ]
            : [cell.name, cell.error || 'no image']
        }))
      : [
          {
            canvas: visible(bench.pane.surface.canvas),
            lines: bench.pane.labels()
          }
        ];
  const footer = [`${state.path} · ${new Date().toLocaleString()}`];
  const name = (state.path.split('/').pop() || 'image').replace(/\.[^.]*$/, '');
  const places: ITilePlace[] = [];
  const picture = composeTiles(tiles, footer, places);
  // Where each image is in the file (for scripts and tests that check it).
  bench.node.dataset.exportTiles = JSON.stringify(places);
  await downloadPng(picture, `compare-${name}-${state.mode}.png`);
}
