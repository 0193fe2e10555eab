/**
 * Pixels for the workbench: decoded images kept as bitmaps (decoded once,
 * cached), their raw RGBA for the readout, and the difference of two images
 * with its statistics and a colour map.
 */
import { GuildImgApi } from './api';

/** Decoded pixels kept (full size and reduced bitmaps; 4 bytes each: 64 Mpx is
 * 256 MB); past it, the least recently used bitmaps go. */
const CACHE_PIXELS = 64 * 1024 * 1024;
/** Requests in flight at once; the rest wait (and are dropped once unwanted). */
const CONCURRENCY = 6;

/** The widths the server makes reduced images at (its thumbnail widths). */
const REDUCED_WIDTHS = [128, 256, 512, 1024];

/** One image revision at one size: `width` 0 is the full image. */
export interface IBitmapKey {
  run: string;
  path: string;
  revision: number;
  width: number;
}

function keyOf(key: IBitmapKey): string {
  return `${key.run}\n${key.path}\n${key.revision}\n${key.width}`;
}

/** The reduced width to fetch for an image of `natural` width drawn `shown`
 * device pixels wide: the smallest that still has a pixel per screen pixel,
 * or 0 (the full image) when none is smaller than the image. */
export function reducedWidth(natural: number, shown: number): number {
  for (const width of REDUCED_WIDTHS) {
    if (width >= shown) {
      return width < natural ? width : 0;
    }
  }
  return 0;
}

/** Fetches and decodes revisions, each once, and keeps the bitmaps. */
export class BitmapCache {
  constructor(private readonly _api: GuildImgApi) {}

  /** The bitmap if it is decoded already. */
  peek(key: IBitmapKey): ImageBitmap | undefined {
    const id = keyOf(key);
    const bitmap = this._bitmaps.get(id);
    if (bitmap) {
      this._bitmaps.delete(id);
      this._bitmaps.set(id, bitmap); // most recently used last
    }
    return bitmap;
  }

  /** The bitmap, fetched and decoded once however often it is asked for. */
  get(key: IBitmapKey): Promise<ImageBitmap> {
    const id = keyOf(key);
    const bitmap = this.peek(key);
    if (bitmap) {
      return Promise.resolve(bitmap);
    }
    let pending = this._pending.get(id);
    if (!pending) {
      pending = new Promise<ImageBitmap>((resolve, reject) => {
        this._queue.push({ id, key, resolve, reject });
      });
      this._pending.set(id, pending);
      this._pump();
    }
    return pending;
  }

  /** Only these are still wanted: queued requests for others are dropped (a
   * slider dragged across many revisions must not fetch every one). */
  want(keys: IBitmapKey[]): void {
    const wanted = new Set(keys.map(keyOf));
    this._queue = this._queue.filter(job => {
      if (wanted.has(job.id)) {
        return true;
      }
      this._pending.delete(job.id);
      job.reject(new DroppedError());
      return false;
    });
  }

  /** RGBA of a decoded bitmap (made once per bitmap, for the readout). */
  pixels(bitmap: ImageBitmap): ImageData {
    let data = this._pixels.get(bitmap);
    if (!data) {
      data = imageData(bitmap, bitmap.width, bitmap.height);
      this._pixels.set(bitmap, data);
    }
    return data;
  }

  dispose(): void {
    this.want([]);
    this._bitmaps.forEach(b => b.close());
    this._bitmaps.clear();
    this._pixelCount = 0;
  }

  private _pump(): void {
    while (this._running < CONCURRENCY && this._queue.length > 0) {
      const job = this._queue.shift()!;
      this._running++;
      void this._load(job.key)
        .then(bitmap => {
          this._bitmaps.set(job.id, bitmap);
          this._pixelCount += bitmap.width * bitmap.height;
          while (this._pixelCount > CACHE_PIXELS && this._bitmaps.size > 1) {
            const [oldest, old] = this._bitmaps.entries().next().value!;
            this._bitmaps.delete(oldest);
            // Not closed: a cell may still be drawing it until its next
            // revision is decoded; the collector frees it after that.
            this._pixelCount -= old.width * old.height;
          }
          job.resolve(bitmap);
        }, job.reject)
        .finally(() => {
          this._pending.delete(job.id);
          this._running--;
          this._pump();
        });
    }
  }

  private async _load(key: IBitmapKey): Promise<ImageBitmap> {
    const blob = await this._api.image(key.run, key.path, {
      revision: key.revision,
      thumb: key.width > 0 ? key.width : undefined
    });
    // The file's own bytes: no colour conversion, so differences are exact.
    return createImageBitmap(blob, {
      colorSpaceConversion: 'none',
      premultiplyAlpha: 'none'
    });
  }

  private _bitmaps = new Map<string, ImageBitmap>();
  private _pending = new Map<string, Promise<ImageBitmap>>();
  private _pixels = new WeakMap<ImageBitmap, ImageData>();
  private _queue: {
    id: string;
    key: IBitmapKey;
    resolve: (b: ImageBitmap) => void;
    reject: (e: Error) => void;
  }[] = [];
  private _running = 0;
  private _pixelCount = 0;
}

/** A request dropped because the view moved on before it started. */
export class DroppedError extends Error {
  constructor() {
    super('no longer wanted');
  }
}

/** A bitmap's RGBA, drawn at `width`×`height` (scaled when they differ). */
export function imageData(
  bitmap: ImageBitmap,
  width: number,
  height: number
): ImageData {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext('2d', { willReadFrequently: true })!;
  context.imageSmoothingEnabled = width !== bitmap.width;
  context.drawImage(bitmap, 0, 0, width, height);
  return context.getImageData(0, 0, width, height);
}

/** How two images differ, pixel by pixel. A pixel's difference is the largest
 * absolute difference of its R, G, B and A values (0–255). */
export interface IDifference {
  /** Pixels whose difference is above 0. */
  differing: number;
  total: number;
  /** The largest difference. */
  max: number;
  /** The mean difference over every pixel. */
  mean: number;
  /** The amplified difference, coloured (black: equal). */
  image: ImageData;
}

/** The difference of `a` and `b` (the same size), amplified `gain` times
 * (0: so that the largest difference is the brightest colour). */
export function difference(a: ImageData, b: ImageData, gain = 0): IDifference {
  const total = a.width * a.height;
  const values = new Uint8Array(total);
  let differing = 0;
  let max = 0;
  let sum = 0;
  const pa = a.data;
  const pb = b.data;
  for (let p = 0, i = 0; p < total; p++, i += 4) {
    const d = Math.max(
      Math.abs(pa[i] - pb[i]),
      Math.abs(pa[i + 1] - pb[i + 1]),
      Math.abs(pa[i + 2] - pb[i + 2]),
      Math.abs(pa[i + 3] - pb[i + 3])
    );
    values[p] = d;
    sum += d;
    if (d > 0) {
      differing++;
      if (d > max) {
        max = d;
      }
    }
  }
  const factor = gain > 0 ? gain : max > 0 ? 255 / max : 1;
  const image = new ImageData(a.width, a.height);
  const out = image.data;
  for (let p = 0, i = 0; p < total; p++, i += 4) {
    const colour = COLOUR_MAP[Math.min(255, Math.round(values[p] * factor))];
    out[i] = colour[0];
    out[i + 1] = colour[1];
    out[i + 2] = colour[2];
    out[i + 3] = 255;
  }
  return { differing, total, max, mean: total ? sum / total : 0, image };
}

/** A 256-step map from black through purple, red and orange to pale yellow:
 * small differences stay visible, the largest stand out. */
const COLOUR_MAP: [number, number, number][] = (() => {
  const stops: [number, [number, number, number]][] = [
    [0, [0, 0, 0]],
    [1, [40, 10, 90]],
    [80, [130, 30, 140]],
    [150, [225, 70, 60]],
    [210, [250, 160, 30]],
    [255, [255, 250, 180]]
  ];
  const map: [number, number, number][] = [];
  for (let v = 0; v < 256; v++) {
    let s = 0;
    while (s < stops.length - 2 && v > stops[s + 1][0]) {
      s++;
    }
    const [v0, c0] = stops[s];
    const [v1, c1] = stops[s + 1];
    const t = v1 > v0 ? Math.max(0, Math.min(1, (v - v0) / (v1 - v0))) : 0;
    map.push(
      [0, 1, 2].map(k => Math.round(c0[k] + (c1[k] - c0[k]) * t)) as [
        number,
        number,
        number
      ]
    );
  }
  return map;
})();
