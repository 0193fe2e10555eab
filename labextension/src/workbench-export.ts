/**
 * "Save as PNG": the comparison as the user sees it, each image with its run
 * name and revision written under it, composed on one canvas and downloaded.
 */

/** One picture of the export and the lines written under it. */
export interface IExportTile {
  canvas: HTMLCanvasElement;
  lines: string[];
}

const PAD = 12;
const LINE = 18;
const FONT = '13px sans-serif';

/** Where a tile landed in the export, in its pixels. */
export interface ITilePlace {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The part of `canvas` inside `rect` (rounded out, clipped to the canvas): the
 * image without the empty stage around it. */
export function crop(
  canvas: HTMLCanvasElement,
  rect: ITilePlace
): HTMLCanvasElement {
  const x0 = Math.max(0, Math.floor(rect.x));
  const y0 = Math.max(0, Math.floor(rect.y));
  const x1 = Math.min(canvas.width, Math.ceil(rect.x + rect.width));
  const y1 = Math.min(canvas.height, Math.ceil(rect.y + rect.height));
  const out = document.createElement('canvas');
  out.width = Math.max(1, x1 - x0);
  out.height = Math.max(1, y1 - y0);
  out.getContext('2d')!.drawImage(canvas, -x0, -y0);
  return out;
}

/** The tiles in a grid (as square as it gets), labels under each, on white;
 * `places` receives where each tile landed. */
export function composeTiles(
  tiles: IExportTile[],
  footer: string[] = [],
  places: ITilePlace[] = []
): HTMLCanvasElement {
  const columns = Math.max(1, Math.ceil(Math.sqrt(tiles.length)));
  const rows = Math.max(1, Math.ceil(tiles.length / columns));
  const cellWidth = Math.max(1, ...tiles.map(t => t.canvas.width));
  const lines = Math.max(0, ...tiles.map(t => t.lines.length));
  const cellHeight =
    Math.max(1, ...tiles.map(t => t.canvas.height)) + lines * LINE + PAD;
  const out = document.createElement('canvas');
  out.width = PAD + columns * (cellWidth + PAD);
  out.height = PAD + rows * (cellHeight + PAD) + footer.length * LINE;
  const context = out.getContext('2d')!;
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, out.width, out.height);
  context.font = FONT;
  context.textBaseline = 'top';
  tiles.forEach((tile, i) => {
    const x = PAD + (i % columns) * (cellWidth + PAD);
    const y = PAD + Math.floor(i / columns) * (cellHeight + PAD);
    context.drawImage(tile.canvas, x, y);
    places.push({ x, y, width: tile.canvas.width, height: tile.canvas.height });
    context.fillStyle = '#202020';
    tile.lines.forEach((line, k) =>
      context.fillText(
        line,
        x,
        y + tile.canvas.height + PAD / 2 + k * LINE,
        cellWidth
      )
    );
  });
  context.fillStyle = '#202020';
  footer.forEach((line, k) =>
    context.fillText(
      line,
      PAD,
      PAD + rows * (cellHeight + PAD) + k * LINE,
      out.width - 2 * PAD
    )
  );
  return out;
}

/** The canvas as a PNG download named `name`. */
export async function downloadPng(
  canvas: HTMLCanvasElement,
  name: string
): Promise<void> {
  const blob = await new Promise<Blob | null>(resolve =>
    canvas.toBlob(resolve, 'image/png')
  );
  if (!blob) {
    throw new Error('The browser could not encode the PNG.');
  }
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  // The download has its own copy once the click is handled.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
