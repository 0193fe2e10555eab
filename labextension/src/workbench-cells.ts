/**
 * The workbench's runs: each run's listing (its images and their revisions),
 * loaded from the API, and what a run's cell shows.
 */
import { ApiError, IImage, IRevision, IRun } from './api';
import { GuildImgModel } from './model';
import { ISurfaceHost, Surface } from './workbench-view';

/** A run's name as the views write it: short id, operation, label. */
export function runName(run: IRun | null, key: string): string {
  if (!run) {
    return key;
  }
  return [run.short_id, run.operation, run.label].filter(Boolean).join(' ');
}

/** A revision's time, as the captions write it. */
export function when(revision: IRevision): string {
  return new Date(revision.time * 1000).toLocaleString();
}

/** One run of the comparison: its listing and its cell in the grid. */
export class RunCell {
  readonly surface: Surface;
  run: IRun | null = null;
  images: IImage[] = [];
  /** Why nothing is shown ('' when the run loaded). */
  error = '';
  /** The run is not watched here (any more). */
  gone = false;
  /** What was drawn last: shown until the wanted revision is decoded. */
  shown: { bitmap: ImageBitmap; revision: IRevision; index: number } | null =
    null;

  constructor(
    readonly key: string,
    host: ISurfaceHost,
    onRemove: (cell: RunCell) => void
  ) {
    this.surface = new Surface(host, 'guildimg-wb-cell');
    this.surface.node.dataset.run = key;
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'guildimg-wb-remove jp-Button';
    remove.textContent = '✕';
    remove.title = 'Remove this run from the comparison';
    remove.addEventListener('click', () => onRemove(this));
    this.surface.node.prepend(remove);
  }

  /** The revisions of `path`, oldest first. */
  revisions(path: string): IRevision[] {
    const image = this.images.find(i => i.path === path);
    return image ? [...image.revisions].reverse() : [];
  }

  get name(): string {
    return runName(this.run, this.key);
  }

  /** Fetch the run's listing; a run that is gone or fails says why. */
  async load(model: GuildImgModel): Promise<void> {
    try {
      const listing = await model.api.images(this.key);
      this.run = listing.run;
      this.images = listing.images;
      this.error = '';
      this.gone = false;
    } catch (error) {
      this.gone = error instanceof ApiError && error.status === 404;
      this.images = [];
      this.error = this.gone
        ? `Run ${this.key} is not watched here: it was deleted, or its ` +
          'source is no longer watched.'
        : `Cannot load run ${this.key}: ${(error as Error).message}`;
    }
  }

  dispose(): void {
    this.surface.node.remove();
  }
}
