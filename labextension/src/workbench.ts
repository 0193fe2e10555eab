/**
 * The image workbench: the same image path of several runs side by side, one
 * slider for all (by revision or by time), the pixel views of two images
 * (swipe, blink, difference), synchronized zoom and pan, the keyboard, a link
 * and a PNG export. Drawing is on canvases from decoded, cached bitmaps.
 */
import { ISignal, Signal } from '@lumino/signaling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { IRevision } from './api';
import { el } from './dom';
import { GuildImgModel } from './model';
import { RunCell } from './workbench-cells';
import { Controls } from './workbench-controls';
import { drawCell, exportComparison } from './workbench-grid';
import { workbenchKeys } from './workbench-keys';
import { PixelPane } from './workbench-pane';
import { BitmapCache } from './workbench-pixels';
import { Sources } from './workbench-sources';
import {
  IWorkbenchState,
  parseState,
  pick,
  stateLink,
  stops,
  WorkbenchMode
} from './workbench-state';
import {
  IPixel,
  ISurfaceHost,
  IView,
  place,
  Surface,
  writeReadout
} from './workbench-view';

const MIN_SCALE = 1 / 64;
const MAX_SCALE = 64;

/** A run's revision the views draw: which cell, which revision. */
export interface ISide {
  cell: RunCell;
  index: number;
  revision: IRevision;
}

export class Workbench extends Widget implements ISurfaceHost {
  readonly cache: BitmapCache;
  readonly sources: Sources;
  readonly controls: Controls;
  readonly pane: PixelPane;

  constructor(
    readonly model: GuildImgModel,
    state: IWorkbenchState
  ) {
    super();
    this.addClass('guildimg-wb');
    this.node.tabIndex = 0;
    this.cache = new BitmapCache(model.api);
    this.sources = new Sources(
      this.cache,
      () => this._state.path,
      () => this.schedule(),
      (run, message) => {
        const cell = this._cells.find(c => c.key === run);
        if (cell) {
          cell.error = message;
        }
      }
    );
    this._state = parseState(state);
    this.controls = new Controls(this);
    this.pane = new PixelPane(this);
    this._notice.setAttribute('role', 'status');
    this.node.append(
      this.controls.node,
      this._notice,
      this._grid,
      this.pane.node
    );
    this.node.addEventListener('keydown', workbenchKeys(this));
    for (const key of this._state.runs) {
      this._addCell(key);
    }
    model.passed.connect(() => void this.load(), this);
    this._resize = new ResizeObserver(() => this.schedule());
    this._resize.observe(this.node);
    void this.load();
  }

  /** A copy of the state (what the layout saves and the link carries). */
  get state(): IWorkbenchState {
    return { ...this._state, runs: this._cells.map(c => c.key) };
  }

  get stateChanged(): ISignal<this, IWorkbenchState> {
    return this._stateChanged;
  }

  get cells(): readonly RunCell[] {
    return this._cells;
  }

  /** The link that opens this view in JupyterLab on the same server. */
  get link(): string {
    return stateLink(this.state, window.location.href);
  }

  /** Fetch every run's listing, then draw. */
  async load(): Promise<void> {
    await Promise.all(this._cells.map(c => c.load(this.model)));
    if (!this._state.path) {
      // No path asked for (the sidebar's "Compare images"): the image most of
      // the runs captured, the first run's first among equals.
      const paths = this.paths();
      const shared = (path: string): number =>
        this._cells.filter(c => c.images.some(i => i.path === path)).length;
      this._state.path = paths.reduce(
        (best, path) => (shared(path) > shared(best) ? path : best),
        paths[0] ?? ''
      );
    }
    this._loaded = true;
    this._update();
  }

  /** Change the state (a control, a key, the mouse): redraw, tell the layout. */
  change(patch: Partial<IWorkbenchState>): void {
    Object.assign(this._state, patch);
    if (patch.runs) {
      this._syncCells();
    }
    this._update();
    this._stateChanged.emit(this.state);
  }

  setMode(mode: WorkbenchMode): void {
    this.change({ mode });
  }

  /** Move the slider `delta` stops (clamped); the last stop follows the newest. */
  step(delta: number): void {
    const list = this.stops();
    if (list.length === 0) {
      return;
    }
    const at = this.stopIndex();
    this.moveTo(Math.max(0, Math.min(list.length - 1, at + delta)));
  }

  /** Put the slider at stop `index`. */
  moveTo(index: number): void {
    const list = this.stops();
    const position = index >= list.length - 1 ? -1 : list[index];
    if (position !== this._state.position) {
      this.change({ position });
    }
  }

  /** The next or previous image path of the first run (↑/↓). */
  movePath(delta: number): void {
    const paths = this.paths();
    const at = paths.indexOf(this._state.path);
    const next = paths[Math.max(0, Math.min(paths.length - 1, at + delta))];
    if (next && next !== this._state.path) {
      this.change({ path: next });
    }
  }

  /** Every image path of the runs, in the first run's order. */
  paths(): string[] {
    const all = new Set<string>();
    this._cells.forEach(c => c.images.forEach(i => all.add(i.path)));
    return [...all];
  }

  /** The slider's stops for the runs' revisions of the path. */
  stops(): number[] {
    return stops(
      this._state.align,
      this._cells.map(c => c.revisions(this._state.path))
    );
  }

  /** Where the slider is among the stops. */
  stopIndex(): number {
    const list = this.stops();
    const at = list.indexOf(this._state.position);
    return this._state.position < 0 || at < 0 ? list.length - 1 : at;
  }

  /** The revision a cell shows at the slider's position. */
  side(cell: RunCell, reference = -1): ISide | null {
    const revisions = cell.revisions(this._state.path);
    const index =
      reference >= 0
        ? Math.min(reference, revisions.length - 1)
        : pick(this._state.align, this._state.position, revisions);
    return index < 0 ? null : { cell, index, revision: revisions[index] };
  }

  /** The two images the pixel views compare: the first two runs, or one run's
   * revision against its reference revision. */
  pair(): [ISide | null, ISide | null] {
    const [a, b] = this._cells;
    if (!a) {
      return [null, null];
    }
    return [
      this.side(a),
      b ? this.side(b) : this.side(a, this._state.reference)
    ];
  }

  /** The view all surfaces share; the frame is the first image's size. */
  view(): IView | null {
    const first = this._cells
      .map(c => this.side(c))
      .find((s): s is ISide => s !== null);
    if (!first) {
      return null;
    }
    const { scale, centerX, centerY } = this._state;
    return {
      scale,
      centerX,
      centerY,
      frameWidth: first.revision.width,
      frameHeight: first.revision.height
    };
  }

  /** Zoom every surface by `factor`, around the middle of the first one. */
  zoomBy(factor: number): void {
    const surface = this._visibleSurface();
    if (surface) {
      this.zoomAt(
        surface,
        factor,
        surface.size()[0] / 2,
        surface.size()[1] / 2
      );
    }
  }

  fit(): void {
    this.change({ scale: 0, centerX: 0.5, centerY: 0.5 });
  }

  /** One image pixel on one screen pixel (device pixels: crisp on HiDPI). */
  actualSize(): void {
    const view = this.view();
    const surface = this._visibleSurface();
    if (!view || !surface) {
      return;
    }
    const at = place(view, surface.size()[0], surface.size()[1]);
    const middle = this._framePoint(
      at,
      surface.size()[0] / 2,
      surface.size()[1] / 2
    );
    this.change({ scale: 1, centerX: middle[0], centerY: middle[1] });
  }

  zoomAt(surface: Surface, factor: number, x: number, y: number): void {
    const view = this.view();
    if (!view) {
      return;
    }
    const at = place(view, surface.size()[0], surface.size()[1]);
    const [fx, fy] = this._framePoint(at, x, y);
    const scale = Math.max(MIN_SCALE, Math.min(MAX_SCALE, at.scale * factor));
    const width = view.frameWidth * scale;
    const height = view.frameHeight * scale;
    this.change({
      scale,
      centerX: fx - (x - surface.size()[0] / 2) / width,
      centerY: fy - (y - surface.size()[1] / 2) / height
    });
  }

  panBy(surface: Surface, dx: number, dy: number): void {
    const view = this.view();
    if (!view) {
      return;
    }
    const at = place(view, surface.size()[0], surface.size()[1]);
    const [cx, cy] = view.scale > 0 ? [view.centerX, view.centerY] : [0.5, 0.5];
    this.change({
      scale: at.scale,
      centerX: cx - dx / at.width,
      centerY: cy - dy / at.height
    });
  }

  pointAt(surface: Surface, x: number, y: number): void {
    this._pointer = { surface, x, y };
    const view = this.view();
    if (!view) {
      return;
    }
    const at = place(view, surface.canvas.width, surface.canvas.height);
    const [fx, fy] = this._framePoint(at, x, y);
    const inside = fx >= 0 && fx < 1 && fy >= 0 && fy < 1;
    if (surface === this.pane.surface) {
      this.pane.readout(inside ? [fx, fy] : null);
      return;
    }
    const cell = this._cells.find(c => c.surface === surface);
    const side = cell ? this.side(cell) : null;
    writeReadout(
      surface.readout,
      side ? this.valueAt(side, fx, fy, inside) : null
    );
  }

  pointLeft(surface: Surface): void {
    this._pointer = null;
    writeReadout(surface.readout, null);
  }

  /** The pixel of `side` at frame point (`fx`, `fy`), from its full image (fetched
   * on first use), or null when outside or not decoded yet. */
  valueAt(side: ISide, fx: number, fy: number, inside = true): IPixel | null {
    if (!inside) {
      return null;
    }
    const { width, height } = side.revision;
    const x = Math.min(width - 1, Math.floor(fx * width));
    const y = Math.min(height - 1, Math.floor(fy * height));
    const bitmap = this.sources.full(side);
    if (!bitmap) {
      return { x, y, rgba: null };
    }
    const data = this.cache.pixels(bitmap).data;
    const i = (y * bitmap.width + x) * 4;
    return { x, y, rgba: [data[i], data[i + 1], data[i + 2], data[i + 3]] };
  }

  /** Whether the runs' listings were fetched once. */
  get loaded(): boolean {
    return this._loaded;
  }

  /** The comparison as a PNG download, labelled. */
  exportPng(): Promise<void> {
    return exportComparison(this);
  }

  /** Redraw at the next frame (once however often it is asked). */
  schedule(): void {
    if (!this._frame && !this.isDisposed) {
      this._frame = requestAnimationFrame(() => this._render());
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    cancelAnimationFrame(this._frame);
    this._resize.disconnect();
    this.pane.dispose();
    this.cache.dispose();
    Signal.clearData(this);
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    this.schedule();
  }

  private _addCell(key: string): RunCell {
    const cell = new RunCell(key, this, c =>
      this.change({ runs: this._cells.filter(o => o !== c).map(o => o.key) })
    );
    this._cells.push(cell);
    this._grid.append(cell.surface.node);
    return cell;
  }

  /** Cells for the state's runs: new ones added (and loaded), others removed. */
  private _syncCells(): void {
    const keys = [...new Set(this._state.runs)];
    for (const cell of this._cells.filter(c => !keys.includes(c.key))) {
      cell.dispose();
    }
    const kept = this._cells.filter(c => keys.includes(c.key));
    this._cells = kept;
    for (const key of keys.filter(k => !kept.some(c => c.key === k))) {
      void this._addCell(key)
        .load(this.model)
        .then(() => this._update());
    }
    this._cells.sort((a, b) => keys.indexOf(a.key) - keys.indexOf(b.key));
    this._grid.append(...this._cells.map(c => c.surface.node));
  }

  private _update(): void {
    const state = this._state;
    const names = this._cells.map(c => c.name).join(', ');
    this.title.label = `Compare ${state.path.split('/').pop() || 'images'}`;
    this.title.caption = `${state.path} in ${names}`;
    this.node.dataset.mode = state.mode;
    this.node.dataset.loaded = String(this._loaded);
    this._grid.hidden = state.mode !== 'grid';
    this.pane.node.hidden = state.mode === 'grid';
    this.controls.update();
    this._notice.textContent = this._sizeNotice();
    this._notice.hidden = !this._notice.textContent;
    this.schedule();
  }

  /** "Sizes differ…" when the images shown are not all one size. */
  private _sizeNotice(): string {
    const sides =
      this._state.mode === 'grid'
        ? this._cells.map(c => this.side(c))
        : this.pair();
    const sizes = sides
      .filter((s): s is ISide => s !== null)
      .map(s => `${s.revision.width}×${s.revision.height}`);
    if (new Set(sizes).size <= 1) {
      return '';
    }
    return (
      `The images differ in size (${sizes.join(', ')}): each is drawn at the ` +
      `common scale of the first, ${sizes[0]}.`
    );
  }

  private _render(): void {
    this._frame = 0;
    const view = this.view();
    const wanted = this.sources.begin();
    if (this._state.mode === 'grid') {
      for (const cell of this._cells) {
        drawCell(this, cell, view);
      }
    } else if (view) {
      this.pane.draw(view);
    }
    this.sources.finish(this._cells, wanted);
    if (this._pointer) {
      const { surface, x, y } = this._pointer;
      this.pointAt(surface, x, y);
    }
  }

  private _framePoint(
    at: { x: number; y: number; width: number; height: number },
    x: number,
    y: number
  ): [number, number] {
    return [(x - at.x) / at.width, (y - at.y) / at.height];
  }

  private _visibleSurface(): Surface | undefined {
    return this._state.mode === 'grid'
      ? this._cells[0]?.surface
      : this.pane.surface;
  }

  private _state: IWorkbenchState;
  private _cells: RunCell[] = [];
  private _grid = el('div', 'guildimg-wb-grid');
  private _notice = el('div', 'guildimg-wb-notice');
  private _frame = 0;
  private _loaded = false;
  private _pointer: { surface: Surface; x: number; y: number } | null = null;
  private _resize: ResizeObserver;
  private _stateChanged = new Signal<this, IWorkbenchState>(this);
}
