/**
 * One drawing surface of the workbench: a canvas in device pixels, a caption
 * (which run, revision and time it shows), a pixel readout, and the mouse:
 * the wheel zooms and a drag pans (the workbench applies both to every
 * surface, so they stay in step), moving reads the pixel under the cursor.
 */
import { el } from './dom';

/** The shared zoom and pan: `scale` screen pixels per frame pixel (0: fit),
 * the frame point at the canvas centre, the common frame's size. */
export interface IView {
  scale: number;
  centerX: number;
  centerY: number;
  frameWidth: number;
  frameHeight: number;
}

/** Where the frame lands on a canvas: its rectangle, in device pixels, and
 * the device pixels per frame pixel. */
export interface IPlacement {
  x: number;
  y: number;
  width: number;
  height: number;
  scale: number;
}

/** The frame's rectangle on a canvas of `width`×`height` device pixels. */
export function place(view: IView, width: number, height: number): IPlacement {
  const fit = Math.min(width / view.frameWidth, height / view.frameHeight);
  const scale = view.scale > 0 ? view.scale : fit;
  const cx = view.scale > 0 ? view.centerX : 0.5;
  const cy = view.scale > 0 ? view.centerY : 0.5;
  const w = view.frameWidth * scale;
  const h = view.frameHeight * scale;
  return {
    x: width / 2 - cx * w,
    y: height / 2 - cy * h,
    width: w,
    height: h,
    scale
  };
}

/** What the surface asks its workbench to do. */
export interface ISurfaceHost {
  /** Zoom by `factor` keeping the point at (`x`, `y`) (device pixels) still. */
  zoomAt(surface: Surface, factor: number, x: number, y: number): void;
  /** Pan by (`dx`, `dy`) device pixels. */
  panBy(surface: Surface, dx: number, dy: number): void;
  /** The pointer is at (`x`, `y`) device pixels, or left (null). */
  pointAt(surface: Surface, x: number, y: number): void;
  pointLeft(surface: Surface): void;
}

export class Surface {
  readonly node: HTMLDivElement;
  readonly canvas = document.createElement('canvas');
  readonly caption = el('div', 'guildimg-wb-caption');
  readonly readout = el('div', 'guildimg-wb-readout', '\u00a0');
  readonly stage = el('div', 'guildimg-wb-stage');

  constructor(
    private readonly _host: ISurfaceHost,
    className: string
  ) {
    this.node = el('div', className);
    this.canvas.className = 'guildimg-wb-canvas';
    this.stage.append(this.canvas);
    this.node.append(this.stage, this.caption, this.readout);
    this.canvas.addEventListener('wheel', this._onWheel, { passive: false });
    this.canvas.addEventListener('pointerdown', this._onDown);
    this.canvas.addEventListener('pointermove', this._onMove);
    this.canvas.addEventListener('pointerup', this._onUp);
    this.canvas.addEventListener('pointercancel', this._onUp);
    this.canvas.addEventListener('pointerleave', () =>
      this._host.pointLeft(this)
    );
  }

  /** The canvas's size in device pixels as laid out now (the canvas itself
   * is resized at the next frame: a view just shown still has its old size). */
  size(): [number, number] {
    const ratio = window.devicePixelRatio || 1;
    const box = this.stage.getBoundingClientRect();
    return [
      Math.max(1, Math.round(box.width * ratio)),
      Math.max(1, Math.round(box.height * ratio))
    ];
  }

  /** The canvas's 2D context, its backing store sized to its box in device
   * pixels (so one image pixel can be one screen pixel). */
  context(): CanvasRenderingContext2D | null {
    const ratio = window.devicePixelRatio || 1;
    const [width, height] = this.size();
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    this.canvas.style.width = `${width / ratio}px`;
    this.canvas.style.height = `${height / ratio}px`;
    return this.canvas.getContext('2d');
  }

  /** A pointer event's position in device pixels of the canvas. */
  position(event: MouseEvent): [number, number] {
    const box = this.canvas.getBoundingClientRect();
    const ratio = box.width > 0 ? this.canvas.width / box.width : 1;
    return [
      (event.clientX - box.left) * ratio,
      (event.clientY - box.top) * ratio
    ];
  }

  private _onWheel = (event: WheelEvent): void => {
    event.preventDefault();
    const [x, y] = this.position(event);
    // Trackpad pinches arrive as wheel events with ctrlKey and small deltas.
    const delta = event.ctrlKey ? event.deltaY * 4 : event.deltaY;
    this._host.zoomAt(this, Math.exp(-delta / 300), x, y);
  };

  private _onDown = (event: PointerEvent): void => {
    if (event.button !== 0) {
      return;
    }
    this._drag = this.position(event);
    this.canvas.setPointerCapture(event.pointerId);
    this.canvas.classList.add('guildimg-mod-dragging');
  };

  private _onMove = (event: PointerEvent): void => {
    const [x, y] = this.position(event);
    if (this._drag) {
      this._host.panBy(this, x - this._drag[0], y - this._drag[1]);
      this._drag = [x, y];
    }
    this._host.pointAt(this, x, y);
  };

  private _onUp = (event: PointerEvent): void => {
    this._drag = null;
    if (this.canvas.hasPointerCapture(event.pointerId)) {
      this.canvas.releasePointerCapture(event.pointerId);
    }
    this.canvas.classList.remove('guildimg-mod-dragging');
  };

  private _drag: [number, number] | null = null;
}

/** Draw `bitmap` stretched over the frame's rectangle: smoothed when shrunk,
 * crisp (nearest pixel) when enlarged. */
export function drawFrame(
  context: CanvasRenderingContext2D,
  bitmap: CanvasImageSource & { width: number },
  at: IPlacement,
  clip?: { from: number; to: number }
): void {
  context.save();
  if (clip) {
    context.beginPath();
    context.rect(clip.from, 0, clip.to - clip.from, context.canvas.height);
    context.clip();
  }
  context.imageSmoothingEnabled = at.width < bitmap.width;
  context.drawImage(bitmap, at.x, at.y, at.width, at.height);
  context.restore();
}

/** The pixel under the cursor: coordinates in the image, its RGBA (null while
 * the full image is fetched). */
export interface IPixel {
  x: number;
  y: number;
  rgba: number[] | null;
}

/** "x 12, y 5 · RGBA 255 0 0 255" into `node`, also as data attributes. */
export function writeReadout(
  node: HTMLElement,
  pixel: IPixel | null,
  prefix = ''
): void {
  if (!pixel) {
    node.textContent = '\u00a0';
    delete node.dataset.x;
    delete node.dataset.y;
    delete node.dataset.rgba;
    return;
  }
  node.dataset.x = String(pixel.x);
  node.dataset.y = String(pixel.y);
  node.dataset.rgba = pixel.rgba ? pixel.rgba.join(',') : '';
  node.textContent = `${prefix}x ${pixel.x}, y ${pixel.y} · RGBA ${pixel.rgba ? pixel.rgba.join(' ') : '…'}`;
}
