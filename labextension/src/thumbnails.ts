/**
 * The sidebar's lower pane: the selected run's captured images as thumbnails.
 * A thumbnail is fetched again only when its image has a new revision.
 */
import { GuildImgApi, IImage, IRun } from './api';
import { button, el } from './dom';

/** Thumbnails are asked for at twice their CSS size, for high-DPI screens. */
const THUMB_PIXELS = 192;

export class RunThumbnails {
  readonly node = el('section', 'guildimg-sidebar-images');

  constructor(
    private readonly _api: GuildImgApi,
    private readonly _open: (runId: string, path: string) => void
  ) {
    this.node.append(this._title, this._grid);
    this.node.hidden = true;
  }

  /** Show this run's images (null: hide the pane). */
  show(runId: string | null): Promise<void> {
    this._clear();
    this._runId = runId;
    return this.load();
  }

  /** The shown run is gone from the watched sources. */
  gone(): void {
    this._clear();
    this._title.textContent = 'This run is no longer in the watched sources.';
  }

  /** Fetch the shown run's images again (after a monitor pass). */
  async load(): Promise<void> {
    const runId = this._runId;
    this.node.hidden = runId === null;
    if (runId === null) {
      return;
    }
    let images: IImage[];
    let run: IRun;
    try {
      ({ run, images } = await this._api.images(runId));
    } catch (error) {
      if (runId === this._runId) {
        this._title.textContent = `Cannot list this run's images: ${(error as Error).message}`;
      }
      return;
    }
    if (runId !== this._runId) {
      return; // another run was selected meanwhile
    }
    const count = images.length === 1 ? '1 image' : `${images.length} images`;
    // "exp1: 5 images" for a run without an operation (no stray space).
    const name = [run.short_id, run.operation].filter(Boolean).join(' ');
    this._title.textContent = `${name}: ${count}`;
    const wanted = new Set(images.map(image => image.path));
    for (const [path, thumb] of this._thumbs) {
      if (!wanted.has(path)) {
        release(thumb);
        this._thumbs.delete(path);
      }
    }
    images.forEach((image, index) => {
      let thumb = this._thumbs.get(image.path);
      if (!thumb) {
        thumb = this._make(runId, image.path);
        this._thumbs.set(image.path, thumb);
      }
      const newest = image.revisions[0];
      const revisions = image.revisions.length;
      thumb.title = `${image.path}\n${newest.width}×${newest.height}, ${revisions} revision${revisions === 1 ? '' : 's'}`;
      if (thumb.dataset.revision !== String(newest.revision)) {
        thumb.dataset.revision = String(newest.revision);
        void this._fetch(runId, image.path, newest.revision, thumb);
      }
      if (this._grid.children[index] !== thumb) {
        this._grid.insertBefore(thumb, this._grid.children[index] ?? null);
      }
    });
  }

  dispose(): void {
    this._clear();
  }

  private _make(runId: string, path: string): HTMLButtonElement {
    const thumb = button('guildimg-thumb-item', '', path);
    thumb.dataset.path = path;
    const image = document.createElement('img');
    image.className = 'guildimg-sidebar-thumb';
    image.alt = path;
    const caption = el('span', 'guildimg-thumb-caption', path);
    thumb.append(image, caption);
    thumb.addEventListener('click', () => this._open(runId, path));
    return thumb;
  }

  private async _fetch(
    runId: string,
    path: string,
    revision: number,
    thumb: HTMLButtonElement
  ): Promise<void> {
    const image = thumb.querySelector('img') as HTMLImageElement;
    try {
      const blob = await this._api.image(runId, path, {
        revision,
        thumb: THUMB_PIXELS
      });
      if (thumb.dataset.revision !== String(revision) || !thumb.isConnected) {
        return; // a newer revision, or another run, took its place meanwhile
      }
      const old = image.src;
      image.src = URL.createObjectURL(blob);
      if (old.startsWith('blob:')) {
        URL.revokeObjectURL(old);
      }
      thumb.classList.remove('guildimg-mod-broken');
    } catch (error) {
      thumb.classList.add('guildimg-mod-broken');
      thumb.title = `${path}\n${(error as Error).message}`;
    }
  }

  private _clear(): void {
    for (const thumb of this._thumbs.values()) {
      release(thumb);
    }
    this._thumbs.clear();
    this._title.textContent = '';
  }

  private _runId: string | null = null;
  private _thumbs = new Map<string, HTMLButtonElement>();
  private _title = el('h3', 'guildimg-sidebar-images-title');
  private _grid = el('div', 'guildimg-sidebar-thumbs');
}

/** Remove a thumbnail and free its object URL. */
function release(thumb: HTMLElement): void {
  const image = thumb.querySelector('img');
  if (image?.src.startsWith('blob:')) {
    URL.revokeObjectURL(image.src);
  }
  thumb.remove();
}
