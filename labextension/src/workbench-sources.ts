/**
 * Which bitmaps the workbench draws: for each run's revision, a reduced copy
 * while zoomed out and the full image when zoomed in (or for the pixel values
 * and the difference), fetched through the cache; the neighbouring revisions
 * fetched ahead; the difference of two images, computed once.
 */
import {
  BitmapCache,
  difference,
  DroppedError,
  IBitmapKey,
  IDifference,
  imageData,
  reducedWidth
} from './workbench-pixels';
import type { RunCell } from './workbench-cells';
import type { ISide } from './workbench';

export class Sources {
  constructor(
    private readonly _cache: BitmapCache,
    private readonly _path: () => string,
    private readonly _changed: () => void,
    private readonly _fail: (run: string, message: string) => void
  ) {}

  /** A frame starts: the list of what it needs. */
  begin(): IBitmapKey[] {
    this._wanted = [];
    return this._wanted;
  }

  /** The frame is drawn: fetch the neighbours of what it showed, and drop
   * queued fetches of anything else (the slider has moved past them). */
  finish(cells: readonly RunCell[], wanted: IBitmapKey[]): void {
    for (const key of wanted.slice()) {
      const cell = cells.find(c => c.key === key.run);
      const revisions = cell?.revisions(key.path) ?? [];
      const at = revisions.findIndex(r => r.revision === key.revision);
      for (const offset of [1, -1, 2, -2]) {
        const revision = revisions[at + offset];
        if (at >= 0 && revision) {
          const more = { ...key, revision: revision.revision };
          wanted.push(more);
          if (!this._cache.peek(more)) {
            this._request(more);
          }
        }
      }
    }
    this._cache.want(wanted);
  }

  /** The full-size bitmap of a side, or undefined while it is fetched (a
   * redraw follows). */
  full(side: ISide): ImageBitmap | undefined {
    const key = this._key(side, 0);
    this._wanted.push(key);
    return this._cache.peek(key) ?? (this._request(key), undefined);
  }

  /** The bitmap to draw for `side` at `shown` device pixels wide: reduced
   * while zoomed out, full when zoomed in; another size of it meanwhile. */
  bitmap(side: ISide, shown: number): ImageBitmap | undefined {
    const width = this._fullOnly.has(keyText(this._key(side, 0)))
      ? 0
      : reducedWidth(side.revision.width, shown);
    const key = this._key(side, width);
    this._wanted.push(key);
    const hit = this._cache.peek(key);
    if (hit) {
      return hit;
    }
    this._request(key);
    for (const other of [0, 1024, 512, 256, 128]) {
      const spare = this._cache.peek(this._key(side, other));
      if (spare) {
        return spare;
      }
    }
    return undefined;
  }

  /** The difference of two sides at full size (B scaled to A's size), kept
   * for the last pair asked. */
  difference(a: ISide, b: ISide, gain: number): IDifference | null {
    const id = [keyText(this._key(a, 0)), keyText(this._key(b, 0)), gain].join(
      '|'
    );
    if (this._difference?.id === id) {
      return this._difference.value;
    }
    const bitmapA = this.full(a);
    const bitmapB = this.full(b);
    if (!bitmapA || !bitmapB) {
      return null;
    }
    const same =
      bitmapB.width === bitmapA.width && bitmapB.height === bitmapA.height;
    const value = difference(
      this._cache.pixels(bitmapA),
      same
        ? this._cache.pixels(bitmapB)
        : imageData(bitmapB, bitmapA.width, bitmapA.height),
      gain
    );
    this._difference = { id, value };
    return value;
  }

  private _key(side: ISide, width: number): IBitmapKey {
    return {
      run: side.cell.key,
      path: this._path(),
      revision: side.revision.revision,
      width
    };
  }

  private _request(key: IBitmapKey): void {
    const id = keyText(key);
    if (this._asked.has(id)) {
      return;
    }
    this._asked.add(id);
    this._cache.get(key).then(
      () => {
        this._asked.delete(id);
        this._changed();
      },
      (error: Error) => {
        this._asked.delete(id);
        if (error instanceof DroppedError) {
          return;
        }
        if (key.width > 0) {
          // No reduced copy (too large to decode, say): the full image is drawn.
          this._fullOnly.add(keyText({ ...key, width: 0 }));
        } else {
          this._fail(
            key.run,
            `Cannot load revision ${key.revision}: ${error.message}`
          );
        }
        this._changed();
      }
    );
  }

  private _wanted: IBitmapKey[] = [];
  private _asked = new Set<string>();
  private _fullOnly = new Set<string>();
  private _difference: { id: string; value: IDifference } | null = null;
}

function keyText(key: IBitmapKey): string {
  return `${key.run}\n${key.path}\n${key.revision}\n${key.width}`;
}
