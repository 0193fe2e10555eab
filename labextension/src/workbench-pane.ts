/**
 * The workbench's pixel views of two images, A and B (the first two runs, or
 * one run's revision against a reference revision): swipe (a draggable
 * divider), blink (toggle, or automatic), and the difference (amplified, in
 * a colour map) with how many pixels differ and by how much.
 */
import { el, formatCount } from './dom';
import { IDifference } from './workbench-pixels';
import { clamp01 } from './workbench-state';
import {
  drawFrame,
  IView,
  place,
  Surface,
  writeReadout
} from './workbench-view';
import type { ISide, Workbench } from './workbench';

/** Milliseconds each image shows while blinking automatically. */
const BLINK_MS = 600;

export class PixelPane {
  readonly node = el('div', 'guildimg-wb-pane');
  readonly surface: Surface;

  constructor(private readonly _bench: Workbench) {
    this.surface = new Surface(_bench, 'guildimg-wb-pixel');
    this._divider.tabIndex = 0;
    this._divider.setAttribute('role', 'slider');
    this._divider.setAttribute('aria-label', 'Swipe divider');
    this._divider.setAttribute('aria-valuemin', '0');
    this._divider.setAttribute('aria-valuemax', '100');
    this._divider.addEventListener('pointerdown', this._onDividerDown);
    this._divider.addEventListener('pointermove', this._onDividerMove);
    this._divider.addEventListener('pointerup', e =>
      this._divider.releasePointerCapture(e.pointerId)
    );
    this._divider.addEventListener('keydown', this._onDividerKey);
    this.surface.stage.append(this._divider);

    this._blink.addEventListener('click', () => this.toggleBlink());
    this._auto.type = 'checkbox';
    this._auto.className = 'guildimg-wb-auto';
    this._auto.addEventListener('change', () => this._autoBlink());
    const auto = el('label', 'guildimg-wb-auto-label', ' automatic');
    auto.prepend(this._auto);
    this._blinkBar.append(this._blink, auto);

    this._gain.className = 'guildimg-wb-gain jp-mod-styled';
    for (const [value, text] of [
      ['0', 'amplified to the largest'],
      ['1', '×1'],
      ['4', '×4'],
      ['16', '×16']
    ]) {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = text;
      this._gain.append(option);
    }
    this._gain.addEventListener('change', () => this._bench.schedule());
    const gain = el('label', 'guildimg-wb-gain-label', 'Difference ');
    gain.append(this._gain);
    this._diffBar.append(gain, this._stats);

    this._stats.setAttribute('role', 'status');
    this.node.append(el('div', 'guildimg-wb-pane-bar'), this.surface.node);
    (this.node.firstChild as HTMLElement).append(
      this._labels,
      this._blinkBar,
      this._diffBar
    );
  }

  /** Blink: show the other image. */
  toggleBlink(): void {
    this._showB = !this._showB;
    this._bench.schedule();
  }

  /** The pair's names and revisions, for the caption and the export. */
  labels(): string[] {
    const [a, b] = this._bench.pair();
    const line = (name: string, side: ISide | null): string =>
      side
        ? `${name}: ${side.cell.name} · revision ${side.index + 1} · ` +
          `${side.revision.width}×${side.revision.height}`
        : `${name}: no image`;
    const lines = [line('A', a), line('B', b)];
    const mode = this._bench.state.mode;
    if (mode === 'diff' && this._last) {
      lines.push(statsText(this._last));
    } else if (mode === 'blink') {
      lines.push(`showing ${this._showB ? 'B' : 'A'}`);
    }
    return lines;
  }

  /** Draw the current mode of the pair. */
  draw(view: IView): void {
    const mode = this._bench.state.mode;
    const context = this.surface.context();
    const [a, b] = this._bench.pair();
    this.node.dataset.mode = mode;
    this._blinkBar.hidden = mode !== 'blink';
    this._diffBar.hidden = mode !== 'diff';
    this._divider.hidden = mode !== 'swipe';
    if (!context) {
      return;
    }
    const { width, height } = this.surface.canvas;
    context.clearRect(0, 0, width, height);
    this._labels.replaceChildren(
      ...this.labels()
        .slice(0, 2)
        .map(text => el('span', 'guildimg-wb-side', text))
    );
    if (!a || !b) {
      this.surface.caption.textContent =
        'Two images are needed: add a run, or choose a revision to compare with.';
      return;
    }
    this.surface.caption.textContent = '';
    const at = place(view, width, height);
    if (mode === 'diff') {
      this._drawDifference(context, a, b, at);
      return;
    }
    const imageA = this._bench.sources.bitmap(a, at.width);
    const imageB = this._bench.sources.bitmap(b, at.width);
    if (mode === 'blink') {
      const shown = this._showB ? imageB : imageA;
      this.node.dataset.showing = this._showB ? 'B' : 'A';
      this._blink.textContent = `Showing ${this._showB ? 'B' : 'A'} — toggle (b)`;
      if (shown) {
        drawFrame(context, shown, at);
      }
      return;
    }
    const divider = this._bench.state.divider;
    const split = divider * width;
    this._divider.style.left = `${divider * 100}%`;
    this._divider.setAttribute(
      'aria-valuenow',
      String(Math.round(divider * 100))
    );
    this.node.dataset.divider = divider.toFixed(3);
    if (imageA) {
      drawFrame(context, imageA, at, { from: 0, to: split });
    }
    if (imageB) {
      drawFrame(context, imageB, at, { from: split, to: width });
    }
  }

  /** The pixel of A and B under the cursor (and their difference). */
  readout(point: [number, number] | null): void {
    const [a, b] = this._bench.pair();
    if (!point || !a || !b) {
      writeReadout(this.surface.readout, null);
      return;
    }
    const pixelA = this._bench.valueAt(a, point[0], point[1]);
    const pixelB = this._bench.valueAt(b, point[0], point[1]);
    writeReadout(this.surface.readout, pixelA, 'A ');
    if (pixelB?.rgba) {
      this.surface.readout.dataset.rgbaB = pixelB.rgba.join(',');
      this.surface.readout.textContent += ` · B ${pixelB.rgba.join(' ')}`;
    }
  }

  dispose(): void {
    clearInterval(this._timer);
  }

  private _drawDifference(
    context: CanvasRenderingContext2D,
    a: ISide,
    b: ISide,
    at: ReturnType<typeof place>
  ): void {
    const result = this._bench.sources.difference(
      a,
      b,
      Number(this._gain.value)
    );
    if (!result) {
      this._stats.textContent = 'Computing the difference…';
      delete this._stats.dataset.differing;
      return;
    }
    if (result !== this._last) {
      this._last = result;
      this._canvas.width = result.image.width;
      this._canvas.height = result.image.height;
      this._canvas.getContext('2d')!.putImageData(result.image, 0, 0);
      this._stats.textContent = statsText(result);
      const data = this._stats.dataset;
      data.differing = String(result.differing);
      data.total = String(result.total);
      data.max = String(result.max);
      data.mean = result.mean.toFixed(4);
    }
    drawFrame(context, this._canvas, at);
  }

  private _autoBlink(): void {
    clearInterval(this._timer);
    if (this._auto.checked) {
      this._timer = window.setInterval(() => {
        if (this._bench.state.mode === 'blink') {
          this.toggleBlink();
        }
      }, BLINK_MS);
    }
  }

  private _onDividerDown = (event: PointerEvent): void => {
    this._divider.setPointerCapture(event.pointerId);
    event.stopPropagation();
  };

  private _onDividerMove = (event: PointerEvent): void => {
    if (!this._divider.hasPointerCapture(event.pointerId)) {
      return;
    }
    const box = this.surface.stage.getBoundingClientRect();
    this._bench.change({
      divider: clamp01((event.clientX - box.left) / Math.max(1, box.width))
    });
  };

  private _onDividerKey = (event: KeyboardEvent): void => {
    const step = event.shiftKey ? 0.1 : 0.02;
    const moves: Record<string, number> = {
      ArrowLeft: -step,
      ArrowRight: step
    };
    if (event.key in moves) {
      event.preventDefault();
      event.stopPropagation();
      this._bench.change({
        divider: clamp01(this._bench.state.divider + moves[event.key])
      });
    }
  };

  private _divider = el('div', 'guildimg-wb-divider');
  private _labels = el('div', 'guildimg-wb-sides');
  private _blinkBar = el('div', 'guildimg-wb-blinkbar');
  private _blink = el('button', 'guildimg-wb-blink jp-Button', 'Toggle (b)');
  private _auto = document.createElement('input');
  private _diffBar = el('div', 'guildimg-wb-diffbar');
  private _gain = document.createElement('select');
  private _stats = el('span', 'guildimg-wb-stats');
  private _canvas = document.createElement('canvas');
  private _last: IDifference | null = null;
  private _showB = false;
  private _timer = 0;
}

/** "1,234 of 4,096 pixels differ (30.1 %) · max 255 · mean 12.30" */
export function statsText(result: IDifference): string {
  const share = result.total ? (100 * result.differing) / result.total : 0;
  return (
    `${formatCount(result.differing)} of ${formatCount(result.total)} pixels ` +
    `differ (${share.toFixed(1)} %) · max ${result.max} · mean ${result.mean.toFixed(2)}`
  );
}
