/**
 * The image workbench's state: what it shows (runs, image path, revision or
 * time, mode, zoom), how it is saved with the layout and written into a link,
 * and how one slider position picks a revision in each run.
 */
import { IRevision } from './api';

/** How the cells are drawn: side by side, or two images pixel by pixel. */
export type WorkbenchMode = 'grid' | 'swipe' | 'blink' | 'diff';

/** How the one slider picks each run's revision. */
export type Alignment = 'revision' | 'time';

export const MODES: readonly WorkbenchMode[] = [
  'grid',
  'swipe',
  'blink',
  'diff'
];

/** The query parameter a shared link carries the state in. */
export const LINK_PARAM = 'guildimg-compare';

/** Everything a workbench is reopened from (layout restore, link, command). */
export interface IWorkbenchState {
  /** Run keys as the API uses them; the first one is "A" in the pixel views. */
  runs: string[];
  path: string;
  align: Alignment;
  /** By revision: the index from the oldest (clamped per run); by time:
   * seconds since the epoch. -1: follow the newest. */
  position: number;
  mode: WorkbenchMode;
  /** Screen pixels per image pixel of the common frame; 0: fit. */
  scale: number;
  /** The frame point in the middle of each cell (fractions of its size). */
  centerX: number;
  centerY: number;
  /** With one run, the pixel views compare against this revision index. */
  reference: number;
  /** The swipe divider, a fraction of the cell's width. */
  divider: number;
}

export function defaultState(runs: string[], path = ''): IWorkbenchState {
  return {
    runs,
    path,
    align: 'revision',
    position: -1,
    mode: 'grid',
    scale: 0,
    centerX: 0.5,
    centerY: 0.5,
    reference: 0,
    divider: 0.5
  };
}

/** A state from untrusted input (a link, saved layout, command args): every
 * field checked, missing or wrong ones defaulted. */
export function parseState(value: unknown): IWorkbenchState {
  const raw = (value && typeof value === 'object' ? value : {}) as Record<
    string,
    unknown
  >;
  const runs = Array.isArray(raw.runs)
    ? raw.runs.filter((r): r is string => typeof r === 'string' && r !== '')
    : [];
  const state = defaultState(
    [...new Set(runs)],
    typeof raw.path === 'string' ? raw.path : ''
  );
  const num = (key: string, fallback: number): number => {
    const v = raw[key];
    return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
  };
  state.align = raw.align === 'time' ? 'time' : 'revision';
  state.position = num('position', -1);
  state.mode = MODES.includes(raw.mode as WorkbenchMode)
    ? (raw.mode as WorkbenchMode)
    : 'grid';
  state.scale = Math.max(0, Math.min(64, num('scale', 0)));
  state.centerX = clamp01(num('centerX', 0.5));
  state.centerY = clamp01(num('centerY', 0.5));
  state.reference = Math.max(0, Math.floor(num('reference', 0)));
  state.divider = clamp01(num('divider', 0.5));
  return state;
}

export function clamp01(value: number): number {
  return Math.max(0, Math.min(1, value));
}

/** The state as a URL-safe string (base64url of its JSON). */
export function encodeState(state: IWorkbenchState): string {
  const bytes = new TextEncoder().encode(JSON.stringify(state));
  let binary = '';
  bytes.forEach(b => (binary += String.fromCharCode(b)));
  return btoa(binary)
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
}

/** The state a link carries, or null when it is not one of ours. */
export function decodeState(text: string): IWorkbenchState | null {
  try {
    const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
    const bytes = Uint8Array.from(binary, c => c.charCodeAt(0));
    const state = parseState(JSON.parse(new TextDecoder().decode(bytes)));
    return state.runs.length > 0 ? state : null;
  } catch {
    return null; // a mangled link: nothing to open
  }
}

/** A link that opens this state in JupyterLab on the same server. */
export function stateLink(state: IWorkbenchState, base: string): string {
  const url = new URL(base);
  url.search = '';
  url.hash = '';
  url.searchParams.set(LINK_PARAM, encodeState(state));
  return url.toString();
}

/** The slider's stops: revision indexes (0..longest-1), or every revision time
 * of every run, sorted and distinct. Revisions are listed oldest first. */
export function stops(
  align: Alignment,
  revisions: readonly (readonly IRevision[])[]
): number[] {
  if (align === 'revision') {
    const longest = Math.max(0, ...revisions.map(r => r.length));
    return Array.from({ length: longest }, (_, i) => i);
  }
  const times = new Set<number>();
  for (const list of revisions) {
    list.forEach(r => times.add(r.time));
  }
  return [...times].sort((a, b) => a - b);
}

/** The index into `revisions` (oldest first) the slider's `position` picks: the
 * same index (clamped to the run's last), or the revision nearest in time. */
export function pick(
  align: Alignment,
  position: number,
  revisions: readonly IRevision[]
): number {
  const last = revisions.length - 1;
  if (last < 0) {
    return -1;
  }
  if (position < 0) {
    return last;
  }
  if (align === 'revision') {
    return Math.min(Math.floor(position), last);
  }
  let best = 0;
  for (let i = 1; i <= last; i++) {
    if (
      Math.abs(revisions[i].time - position) <
      Math.abs(revisions[best].time - position)
    ) {
      best = i;
    }
  }
  return best;
}
