/**
 * A run's row in the sidebar's list: its "in TensorBoard" box, status, short id,
 * operation, label (only the flags that differ between the listed runs, when
 * the label is Guild's `flag=value` list; the whole label on hover), start and
 * image count. Rows wrap instead of cutting the label.
 */
import { IRun } from './api';
import { el, timeAgo } from './dom';

const STATUS_ICONS: Record<string, string> = {
  running: '▶',
  completed: '✓',
  error: '✕',
  terminated: '■',
  staged: '…',
  pending: '…'
};

/** The parts of a row, in the order `makeRow` appends them after the box. */
const PARTS = ['status', 'short', 'op', 'label', 'started', 'count'];

/** A label's `flag=value` words, or null when a word is not one (a label the
 * user wrote: it is shown whole). */
export function labelFlags(label: string): Map<string, string> | null {
  const words = label.split(/\s+/).filter(Boolean);
  if (words.length === 0) {
    return null;
  }
  const flags = new Map<string, string>();
  for (const word of words) {
    const at = word.indexOf('=');
    if (at <= 0) {
      return null;
    }
    flags.set(word.slice(0, at), word.slice(at + 1));
  }
  return flags;
}

/** The flags whose values differ among `runs` (a flag one run lacks differs):
 * what tells the listed runs apart. Empty for fewer than two flag labels. */
export function differingFlags(runs: readonly IRun[]): Set<string> {
  const parsed = runs
    .map(run => labelFlags(run.label))
    .filter((flags): flags is Map<string, string> => flags !== null);
  const differing = new Set<string>();
  if (parsed.length < 2) {
    return differing;
  }
  const keys = new Set(parsed.flatMap(flags => [...flags.keys()]));
  for (const key of keys) {
    const values = new Set(parsed.map(flags => flags.get(key) ?? '\u0000'));
    if (values.size > 1) {
      differing.add(key);
    }
  }
  return differing;
}

/** What a row shows of the label: the differing flags of a flag label (in the
 * label's order), else the whole label. */
export function compactLabel(label: string, differing: Set<string>): string {
  const flags = labelFlags(label);
  if (!flags || differing.size === 0) {
    return label;
  }
  const kept = [...flags].filter(([key]) => differing.has(key));
  return kept.length ? kept.map(([k, v]) => `${k}=${v}`).join(' ') : label;
}

/** An empty row for a run; `fillRow` fills it. */
export function makeRow(runId: string): HTMLLIElement {
  const item = document.createElement('li');
  item.className = 'guildimg-run';
  item.dataset.runId = runId;
  item.tabIndex = 0;
  item.setAttribute('role', 'option');
  // Out of the tab order (the row is the tab stop; "t" toggles it from there).
  const check = el('input', 'guildimg-run-tb');
  check.type = 'checkbox';
  check.tabIndex = -1;
  check.title = 'In TensorBoard (t)';
  check.setAttribute('aria-label', 'in TensorBoard');
  item.append(check);
  for (const part of PARTS) {
    item.append(el('span', `guildimg-run-${part}`));
  }
  return item;
}

/** How a row is to look. */
export interface IRowState {
  selected: boolean;
  inTensorBoard: boolean;
  /** The flags that differ between the listed runs. */
  differing: Set<string>;
}

/** Fill a run's row; a row whose content is unchanged is not touched, so a pass
 * that changed one run costs one row's layout, not the whole list's. */
export function fillRow(item: HTMLElement, run: IRun, state: IRowState): void {
  const ago = timeAgo(run.started);
  const label = compactLabel(run.label, state.differing);
  const key = [
    run.name,
    run.status,
    run.image_count,
    ago,
    label,
    state.selected,
    state.inTensorBoard
  ].join('\u0000');
  if (item.dataset.key === key) {
    return;
  }
  item.dataset.key = key;
  const [check, status, short, op, labelNode, started, count] = [
    ...item.children
  ] as HTMLElement[];
  (check as HTMLInputElement).checked = state.inTensorBoard;
  item.dataset.inTensorboard = String(state.inTensorBoard);
  item.dataset.status = run.status;
  item.classList.toggle('jp-mod-selected', state.selected);
  item.setAttribute('aria-selected', String(state.selected));
  item.title = run.label ? `${run.name}\n${run.label}` : run.name;
  status.textContent = STATUS_ICONS[run.status] ?? '?';
  status.title = run.status;
  status.setAttribute('aria-label', run.status);
  short.textContent = run.short_id;
  op.textContent = run.operation;
  op.hidden = !run.operation;
  labelNode.textContent = label;
  labelNode.title = run.label;
  labelNode.dataset.full = run.label;
  started.textContent = ago;
  started.title = run.started
    ? new Date(run.started * 1000).toLocaleString()
    : '';
  count.textContent =
    run.image_count === 1 ? '1 image' : `${run.image_count} images`;
}
