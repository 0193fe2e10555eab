/**
 * The image tab: one captured image with a revision slider, its path, size and
 * time; the same path in other runs can be added beside it to compare.
 * Every column follows new revisions live while its slider is at the newest.
 */
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { ApiError, IImage, IRun } from './api';
import { button, el, formatSize } from './dom';
import { GuildImgModel } from './model';
import { openWorkbench } from './workbench-plugin';

/** Images smaller than this are enlarged by a whole factor. */
const MIN_SHOWN_PIXELS = 384;

/** What a tab is reopened from after a reload. */
export interface IViewerArgs {
  runId: string;
  path: string;
  compare?: string[];
}

export class ImageViewer extends Widget {
  constructor(
    readonly model: GuildImgModel,
    readonly path: string,
    runIds: string[]
  ) {
    super();
    this.addClass('guildimg-viewer');
    this.title.label = path.split('/').pop() || path;
    this.title.caption = path;
    const toolbar = el('div', 'guildimg-viewer-toolbar');
    toolbar.append(el('span', 'guildimg-viewer-path', path));
    const label = el('label', 'guildimg-viewer-compare-label', 'Compare with ');
    this._compare.className = 'guildimg-viewer-compare jp-mod-styled';
    this._compare.addEventListener('focus', () => void this._loadCandidates());
    this._compare.addEventListener('change', () => {
      const runId = this._compare.value;
      this._compare.value = '';
      if (runId) {
        this.addRun(runId);
      }
    });
    label.append(this._compare);
    const workbench = button(
      'guildimg-viewer-workbench',
      'Open in workbench',
      'Compare these runs side by side with one slider, swipe, blink and ' +
        'difference views'
    );
    workbench.addEventListener(
      'click',
      () => void openWorkbench(this.runIds, this.path)
    );
    toolbar.append(label, workbench);
    this.node.append(toolbar, this._columnsNode);
    this._resetCompare();
    for (const runId of runIds) {
      this.addRun(runId);
    }
    model.passed.connect(this._onPassed, this);
  }

  /** The run ids shown, the first one first. */
  get runIds(): string[] {
    return this._columns.map(column => column.runId);
  }

  /** Emitted when a run is added or removed (the tab's saved state changes). */
  get argsChanged(): ISignal<this, IViewerArgs> {
    return this._argsChanged;
  }

  get args(): IViewerArgs {
    const [runId, ...compare] = this.runIds;
    return { runId, path: this.path, compare };
  }

  addRun(runId: string): void {
    if (this.runIds.includes(runId)) {
      return;
    }
    const column = new ImageColumn(this, runId, this._columns.length > 0);
    this._columns.push(column);
    this._columnsNode.append(column.node);
    void column.load();
    void this._loadCandidates();
    this._argsChanged.emit(this.args);
  }

  /** Close the tab (its run is gone). */
  close(): void {
    (this.parent ?? this).close();
  }

  removeRun(column: ImageColumn): void {
    this._columns = this._columns.filter(c => c !== column);
    column.dispose();
    void this._loadCandidates();
    this._argsChanged.emit(this.args);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    for (const column of this._columns) {
      column.dispose();
    }
    Signal.clearData(this);
    super.dispose();
  }

  private _onPassed(): void {
    for (const column of this._columns) {
      void column.load();
    }
    if (this._candidatesLoaded) {
      void this._loadCandidates();
    }
  }

  /** Other runs that captured the same image path, for the compare menu. */
  private async _loadCandidates(): Promise<void> {
    let runs: IRun[];
    try {
      runs = await this.model.api.runs(this.path);
    } catch {
      return; // the menu keeps its old entries; the columns report errors
    }
    this._candidatesLoaded = true;
    const shown = new Set(this.runIds);
    const others = runs.filter(run => !shown.has(run.id));
    this._resetCompare(
      others.length === 0 ? 'no other run has this image' : 'a run…'
    );
    for (const run of others) {
      const option = document.createElement('option');
      option.value = run.id;
      option.textContent = [run.short_id, run.operation, run.label]
        .filter(Boolean)
        .join(' ');
      this._compare.append(option);
    }
    this._compare.disabled = others.length === 0;
  }

  private _resetCompare(placeholder = 'a run…'): void {
    this._compare.replaceChildren();
    const option = document.createElement('option');
    option.value = '';
    option.textContent = placeholder;
    this._compare.append(option);
  }

  private _columns: ImageColumn[] = [];
  private _columnsNode = el('div', 'guildimg-viewer-columns');
  private _compare = document.createElement('select');
  private _candidatesLoaded = false;
  private _argsChanged = new Signal<this, IViewerArgs>(this);
}

/** One run's revisions of the image: heading, picture, slider, details. */
class ImageColumn {
  readonly node = el('div', 'guildimg-viewer-column');

  constructor(
    private readonly _viewer: ImageViewer,
    readonly runId: string,
    private readonly _removable: boolean
  ) {
    this.node.dataset.runId = runId;
    this._heading.append(this._runName);
    if (_removable) {
      const remove = button(
        'guildimg-viewer-remove',
        '✕',
        'Remove this run from the comparison'
      );
      remove.addEventListener('click', () => this._viewer.removeRun(this));
      this._heading.append(remove);
    }
    this._slider.type = 'range';
    this._slider.className = 'guildimg-viewer-slider';
    this._slider.min = '0';
    this._slider.step = '1';
    this._slider.setAttribute('aria-label', 'Revision');
    this._slider.addEventListener('input', () =>
      this._show(Number(this._slider.value))
    );
    this._image.className = 'guildimg-viewer-image';
    this._image.alt = _viewer.path;
    this._image.addEventListener('load', () => this._enlargeSmall());
    this._frame.append(this._image);
    this._gone.hidden = true;
    this.node.append(
      this._heading,
      this._gone,
      this._frame,
      this._slider,
      this._meta,
      this._error
    );
  }

  /** Fetch the image's revisions; follow the newest if the slider is there. */
  async load(): Promise<void> {
    let image: IImage | undefined;
    let run: IRun;
    try {
      const listing = await this._viewer.model.api.images(this.runId);
      run = listing.run;
      image = listing.images.find(i => i.path === this._viewer.path);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        this._showGone();
      } else {
        this._fail(`Cannot load this run: ${(error as Error).message}`);
      }
      return;
    }
    this._gone.hidden = true;
    this._frame.hidden = this._slider.hidden = this._meta.hidden = false;
    this._runName.textContent = [run.short_id, run.operation, run.label]
      .filter(Boolean)
      .join(' ');
    this._runName.title = run.name;
    if (!image) {
      this._fail(
        `Run ${run.short_id} has no captured image ${this._viewer.path}.`
      );
      return;
    }
    this._error.hidden = true;
    const atNewest = this._index === this._revisions.length - 1;
    // The API lists revisions newest first; the slider runs oldest → newest.
    this._revisions = [...image.revisions].reverse();
    const last = this._revisions.length - 1;
    this._slider.max = String(last);
    this._slider.disabled = last === 0;
    const index =
      atNewest || this._index < 0 ? last : Math.min(this._index, last);
    this._slider.value = String(index);
    this._show(index);
  }

  dispose(): void {
    this._revoke();
    this.node.remove();
  }

  private async _show(index: number): Promise<void> {
    const revision = this._revisions[index];
    if (!revision) {
      return;
    }
    const changed =
      index !== this._index || revision.revision !== this._shownRevision;
    this._index = index;
    const when = new Date(revision.time * 1000).toLocaleString();
    this._meta.textContent =
      `revision ${index + 1} of ${this._revisions.length} · ` +
      `${revision.width}×${revision.height} · ${formatSize(revision.size)} · ${when}`;
    this._meta.dataset.revision = String(revision.revision);
    if (!changed) {
      return;
    }
    this._shownRevision = revision.revision;
    try {
      const blob = await this._viewer.model.api.image(
        this.runId,
        this._viewer.path,
        {
          revision: revision.revision
        }
      );
      if (this._shownRevision !== revision.revision) {
        return; // the slider moved on meanwhile
      }
      this._revoke();
      this._image.src = URL.createObjectURL(blob);
    } catch (error) {
      this._fail(
        `Cannot load revision ${index + 1}: ${(error as Error).message}`
      );
    }
  }

  /** ML images are often tiny (28×28): show them at a whole multiple of their
   * size, at least ~384 px, with crisp pixels; large ones just fit the column. */
  private _enlargeSmall(): void {
    const image = this._image;
    const largest = Math.max(image.naturalWidth, image.naturalHeight);
    const factor =
      largest > 0 ? Math.max(1, Math.floor(MIN_SHOWN_PIXELS / largest)) : 1;
    image.style.width = factor > 1 ? `${image.naturalWidth * factor}px` : '';
    image.classList.toggle('guildimg-mod-pixelated', factor > 1);
  }

  /** The run is not watched here (deleted, or its source removed): say so
   * calmly, with no picture or slider, and offer to close or remove it. */
  private _showGone(): void {
    this._frame.hidden = this._slider.hidden = this._meta.hidden = true;
    this._error.hidden = true;
    this._runName.textContent = this.runId;
    const text = el(
      'p',
      'guildimg-viewer-gone-text',
      `Run ${this.runId} is not watched here: it was deleted, or its source ` +
        `is no longer watched. Its image ${this._viewer.path} cannot be shown.`
    );
    const action = this._removable
      ? button('guildimg-viewer-gone-close', 'Remove from comparison', '')
      : button('guildimg-viewer-gone-close', 'Close tab', '');
    action.addEventListener('click', () =>
      this._removable ? this._viewer.removeRun(this) : this._viewer.close()
    );
    this._gone.replaceChildren(text, action);
    this._gone.hidden = false;
  }

  private _fail(message: string): void {
    this._error.textContent = message;
    this._error.hidden = false;
  }

  private _revoke(): void {
    if (this._image.src.startsWith('blob:')) {
      URL.revokeObjectURL(this._image.src);
    }
  }

  private _revisions: IImage['revisions'] = [];
  private _index = -1;
  private _shownRevision = -1;
  private _heading = el('div', 'guildimg-viewer-heading');
  private _runName = el('span', 'guildimg-viewer-run');
  private _slider = document.createElement('input');
  private _image = document.createElement('img');
  private _frame = el('div', 'guildimg-viewer-frame');
  private _gone = el('div', 'guildimg-viewer-gone');
  private _meta = el('div', 'guildimg-viewer-meta');
  private _error = el('div', 'guildimg-viewer-error');
}
