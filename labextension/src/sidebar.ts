/**
 * The left-sidebar panel: TensorBoard's state, Refresh, a filter, the runs
 * (newest first, live from the change feed) and the selected run's thumbnails.
 * The filter is the server's (`GET runs?q=`): the sidebar only shows its answer.
 */
import { Widget } from '@lumino/widgets';

import { IRun, ITensorBoardState } from './api';
import { button, el, timeAgo } from './dom';
import { GuildImgModel } from './model';
import { RunThumbnails } from './thumbnails';

/** What the sidebar keeps across a page reload. */
export interface ISidebarState {
  selected: string | null;
  filter: string;
}

export interface ISidebarActions {
  openImage(runId: string, path: string): void;
  openTensorBoard(): void;
  stateChanged(state: ISidebarState): void;
}

export class GuildImgSidebar extends Widget {
  constructor(
    readonly model: GuildImgModel,
    private readonly _actions: ISidebarActions
  ) {
    super();
    this.id = 'guildimg-sidebar';
    this.addClass('guildimg-sidebar');
    this.title.caption = 'Guild Images: runs and their images';
    this._build();
    model.changed.connect(() => this._onRunsChanged(), this);
    model.passed.connect(() => void this._thumbnails.load(), this);
    model.tensorBoardChanged.connect(this._onTensorBoard, this);
    // "3 min ago" ages while nothing else changes.
    this._clock = window.setInterval(() => this._renderRuns(), 30_000);
    this._renderRuns();
    if (model.tensorBoard) {
      this._onTensorBoard(model, model.tensorBoard);
    }
  }

  get state(): ISidebarState {
    return { selected: this._selected, filter: this._filter.value };
  }

  /** Restore a saved state (after a reload): filter text and selected run. */
  restore(state: Partial<ISidebarState>): void {
    this._filter.value = state.filter ?? '';
    void this._loadFiltered();
    this._renderRuns();
    if (state.selected) {
      this.select(state.selected);
    }
  }

  /** Select a run and show its images (null: none). */
  select(runId: string | null): void {
    if (runId === this._selected) {
      return;
    }
    this._selected = runId;
    this._renderRuns();
    this._actions.stateChanged(this.state);
    void this._thumbnails.show(runId);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearInterval(this._clock);
    window.clearTimeout(this._filterTimer);
    this._thumbnails.dispose();
    super.dispose();
  }

  private _build(): void {
    const node = this.node;
    const header = el('div', 'guildimg-sidebar-header');
    header.append(el('h2', 'guildimg-sidebar-title', 'Guild Images'));
    this._tbState.setAttribute('role', 'status');
    header.append(this._tbState);
    const actions = el('div', 'guildimg-sidebar-actions');
    const refresh = button(
      'guildimg-sidebar-refresh',
      'Refresh',
      'Run a monitor pass now'
    );
    refresh.addEventListener('click', () => void this._refresh(refresh));
    const openTb = button(
      'guildimg-sidebar-open-tb',
      'Open TensorBoard',
      'Open TensorBoard in a tab'
    );
    openTb.addEventListener('click', () => this._actions.openTensorBoard());
    actions.append(refresh, openTb);
    header.append(actions);

    this._filter.type = 'search';
    this._filter.className = 'guildimg-sidebar-filter jp-mod-styled';
    this._filter.placeholder = 'Filter runs (id, operation, label, status)';
    this._filter.setAttribute('aria-label', 'Filter runs');
    this._filter.addEventListener('input', () => {
      // One request once the typing pauses, not one per key.
      window.clearTimeout(this._filterTimer);
      this._filterTimer = window.setTimeout(
        () => void this._loadFiltered(),
        FILTER_DEBOUNCE_MS
      );
      this._actions.stateChanged(this.state);
    });

    this._runList.setAttribute('role', 'listbox');
    this._runList.setAttribute('aria-label', 'Runs');
    this._runList.addEventListener('keydown', event => this._onKey(event));

    node.append(
      header,
      this._filter,
      this._message,
      this._runList,
      this._thumbnails.node
    );
  }

  private async _refresh(refresh: HTMLButtonElement): Promise<void> {
    refresh.disabled = true;
    try {
      await this.model.refresh();
    } finally {
      refresh.disabled = false;
    }
  }

  /** TensorBoard's state, in the server's words (`summary`: the same sentence
   * every client shows). */
  private _onTensorBoard(_: GuildImgModel, state: ITensorBoardState): void {
    this._tbState.className = 'guildimg-sidebar-tb';
    this._tbState.dataset.status = state.status;
    this._tbState.textContent = state.summary || state.status;
    this._tbState.title = state.reason;
  }

  /** The runs changed on the server: the filtered list is fetched again. */
  private _onRunsChanged(): void {
    if (this._query) {
      void this._loadFiltered();
    }
    this._renderRuns();
  }

  /** Ask the server for the runs the filter text keeps (none asked without a
   * filter: then the model's list is the answer). Answers to an older text are
   * dropped. */
  private async _loadFiltered(): Promise<void> {
    const query = this._filter.value.trim();
    const asked = ++this._filterAsked;
    if (!query) {
      this._query = '';
      this._filtered = null;
      this._renderRuns();
      return;
    }
    let runs: IRun[];
    try {
      runs = await this.model.api.runs(undefined, query);
    } catch {
      return; // the model's own requests report the server's errors
    }
    if (asked === this._filterAsked && !this.isDisposed) {
      this._query = query;
      this._filtered = runs;
      this._renderRuns();
    }
  }

  private _renderRuns(): void {
    const runs = this.model.runs;
    const shown = this._query && this._filtered ? this._filtered : runs;
    this._renderMessage(runs.length, shown.length);
    const seen = new Set<string>();
    let previous: Element | null = null;
    for (const run of shown) {
      seen.add(run.id);
      let item = this._items.get(run.id);
      if (!item) {
        item = this._makeItem(run.id);
        this._items.set(run.id, item);
      }
      fillItem(item, run, run.id === this._selected);
      // Keep the DOM order newest first without rebuilding (focus stays put).
      const expected: Element | null = previous
        ? previous.nextElementSibling
        : this._runList.firstElementChild;
      if (expected !== item) {
        this._runList.insertBefore(item, expected);
      }
      previous = item;
    }
    for (const [id, item] of this._items) {
      if (!seen.has(id)) {
        item.remove();
        this._items.delete(id);
      }
    }
    const known = runs.some(run => run.id === this._selected);
    if (this._selected && this.model.loaded && !known) {
      this._thumbnails.gone();
    }
  }

  private _renderMessage(total: number, shown: number): void {
    const error = this.model.error;
    let text = '';
    if (error) {
      text = error;
    } else if (total === 0 && this.model.loaded) {
      const watching = this._sources
        ? ` Watching: ${this._sources.join(', ')}.`
        : '';
      text = `No runs yet.${watching} Runs appear here as soon as they start.`;
      void this._loadSources();
    } else if (shown === 0 && total > 0) {
      text = `No run matches "${this._query}" (${total} runs).`;
    }
    this._message.className = 'guildimg-sidebar-message';
    this._message.classList.toggle('guildimg-mod-error', Boolean(error));
    this._message.textContent = text;
    this._message.hidden = !text;
  }

  /** The watched sources, for the empty list's message: asked for once. */
  private async _loadSources(): Promise<void> {
    if (this._sourcesAsked) {
      return;
    }
    this._sourcesAsked = true;
    try {
      this._sources = await this.model.api.sources();
    } catch {
      return; // the message without the sources is still right
    }
    this._renderRuns();
  }

  private _makeItem(runId: string): HTMLLIElement {
    const item = document.createElement('li');
    item.className = 'guildimg-run';
    item.dataset.runId = runId;
    item.tabIndex = 0;
    item.setAttribute('role', 'option');
    for (const part of ['status', 'short', 'op', 'label', 'started', 'count']) {
      item.append(el('span', `guildimg-run-${part}`));
    }
    item.addEventListener('click', () => this.select(runId));
    return item;
  }

  private _onKey(event: KeyboardEvent): void {
    const items = [...this._runList.children] as HTMLElement[];
    const index = items.indexOf(document.activeElement as HTMLElement);
    if (index < 0) {
      return;
    }
    let next = index;
    if (event.key === 'ArrowDown') {
      next = Math.min(items.length - 1, index + 1);
    } else if (event.key === 'ArrowUp') {
      next = Math.max(0, index - 1);
    } else if (event.key === 'Enter' || event.key === ' ') {
      this.select(items[index].dataset.runId ?? null);
    } else {
      return;
    }
    event.preventDefault();
    items[next].focus();
  }

  private _selected: string | null = null;
  /** The filter text the shown list answers ('' for every run), and that list. */
  private _query = '';
  private _filtered: IRun[] | null = null;
  private _filterAsked = 0;
  private _filterTimer = 0;
  private _sources: string[] | null = null;
  private _sourcesAsked = false;
  private _clock: number;
  private _items = new Map<string, HTMLLIElement>();
  private _tbState = el('div', 'guildimg-sidebar-tb', 'TensorBoard: …');
  private _filter = document.createElement('input');
  private _message = el('div', 'guildimg-sidebar-message');
  private _runList = el('ul', 'guildimg-sidebar-runs');
  private _thumbnails = new RunThumbnails(this.model.api, (runId, path) =>
    this._actions.openImage(runId, path)
  );
}

/** How long the filter waits for the typing to pause before asking the server. */
const FILTER_DEBOUNCE_MS = 250;

const STATUS_ICONS: Record<string, string> = {
  running: '▶',
  completed: '✓',
  error: '✕',
  terminated: '■',
  staged: '…',
  pending: '…'
};

/** Fill a run's row; a row whose content is unchanged is not touched, so a pass
 * that changed one run costs one row's layout, not the whole list's. */
function fillItem(item: HTMLElement, run: IRun, selected: boolean): void {
  const ago = timeAgo(run.started);
  const key = [run.name, run.status, run.image_count, ago, selected].join(
    '\u0000'
  );
  if (item.dataset.key === key) {
    return;
  }
  item.dataset.key = key;
  const [status, short, op, label, started, count] = [
    ...item.children
  ] as HTMLElement[];
  item.dataset.status = run.status;
  item.classList.toggle('jp-mod-selected', selected);
  item.setAttribute('aria-selected', String(selected));
  item.title = run.name;
  status.textContent = STATUS_ICONS[run.status] ?? '?';
  status.title = run.status;
  status.setAttribute('aria-label', run.status);
  short.textContent = run.short_id;
  op.textContent = run.operation;
  label.textContent = run.label;
  started.textContent = ago;
  started.title = run.started
    ? new Date(run.started * 1000).toLocaleString()
    : '';
  count.textContent =
    run.image_count === 1 ? '1 image' : `${run.image_count} images`;
}
