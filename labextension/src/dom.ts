/** Small DOM and formatting helpers the views share. */
import { ISelection } from './api';

/** An element with a class and, optionally, its text. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text) {
    node.textContent = text;
  }
  return node;
}

/** A JupyterLab-styled button (type "button", never a form submit). */
export function button(
  className: string,
  text: string,
  title: string
): HTMLButtonElement {
  const node = el('button', `${className} jp-Button`, text);
  node.type = 'button';
  node.title = title;
  return node;
}

/** "3 min ago" for a time in seconds since the epoch. */
export function timeAgo(
  seconds: number | null,
  now: number = Date.now()
): string {
  if (seconds === null) {
    return '';
  }
  const elapsed = Math.max(0, now / 1000 - seconds);
  const steps: [number, string][] = [
    [86400, 'd'],
    [3600, 'h'],
    [60, 'min']
  ];
  for (const [size, unit] of steps) {
    if (elapsed >= size) {
      return `${Math.floor(elapsed / size)} ${unit} ago`;
    }
  }
  return 'just now';
}

/** "12.3 KB" */
export function formatSize(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** The first sentence of TensorBoard's failure reason (the rest is its stderr,
 * which the TensorBoard tab shows in full). */
export function shortReason(reason: string): string {
  const end = reason.indexOf('. ');
  return end > 0 ? reason.slice(0, end + 1) : reason;
}

/** "10,000" (the same digits grouping on every page). */
export function formatCount(count: number): string {
  return count.toLocaleString('en-US');
}

/** "12 of 10,000 runs": how many runs TensorBoard shows, in the server's words. */
export function selectionCount(selection: ISelection): string {
  return selection.summary;
}

/** Which rule chose them, in a few words (the server's, as for the count). */
export function selectionRule(selection: ISelection): string {
  return selection.rule;
}
