/**
 * The left-sidebar panel: TensorBoard's state and warnings, Refresh, a filter,
 * which runs TensorBoard shows (with "Only these", "Add filtered runs", "Auto"),
 * while the monitor indexes, how far it is ("Indexing 1,200 of 10,000 runs…"), the runs (newest first, live from the change feed, each with its "in
 * TensorBoard" checkbox) and the selected run's thumbnails.
 * The filter is the server's (`GET runs?q=`): the sidebar only shows its answer.
 */
import { Widget } from '@lumino/widgets';

import {
  IIndexProgress,
  IRun,
  ISelectionChange,
  ITensorBoardState
} from './api';
import { button, el, formatCount, selectionCount, selectionRule } from './dom';
import { GuildImgModel } from './model';
import { differingFlags, fillRow, makeRow } from './runrow';
import { SourcesSection } from './sources';
import { RunThumbnails } from './thumbnails';

/** What the sidebar keeps across a page reload. */
export interface ISidebarState {
  /** The run whose images are shown (the last one clicked). */
  selected: string | null;
  filter: string;
  /** Every selected run (multi-select), `selected` among them. */
  chosen?: string[];
}

export interface ISidebarActions {
  openImage(runId: string, path: string): void;
  openTensorBoard(): void;
  stateChanged(state: ISidebarState): void;
  /** Whether "Compare images" can be done (its command is registered). */
  canCompare(): boolean;
  /** Compare the images of these runs (run keys, in the list's order). */
  compare(runs: string[]): void;
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
    model.selectionChanged.connect(() => this._renderSelection(), this);
    // "3 min ago" ages while nothing else changes.
    this._clock = window.setInterval(() => this._renderRuns(), 30_000);
    this._renderRuns();
    if (model.tensorBoard) {
      this._onTensorBoard(model, model.tensorBoard);
    }
    this._renderSelection();
    void this._followIndex();
  }

  get state(): ISidebarState {
    return {
      selected: this._selected,
      filter: this._filter.value,
      chosen: [...this._chosen]
    };
  }

  /** The selected runs (run keys, in the list's order). */
  get chosen(): string[] {
    return this._ordered([...this._chosen]);
  }

  /** Restore a saved state (after a reload): filter text and selected runs. */
  restore(state: Partial<ISidebarState>): void {
    this._filter.value = state.filter ?? '';
    void this._loadFiltered();
    this._renderRuns();
    if (state.selected) {
      this.select(state.selected);
    }
    for (const key of state.chosen ?? []) {
      this._chosen.add(key);
    }
    this._renderRuns();
  }

  /** Select a run alone and show its images (null: none). */
  select(runId: string | null): void {
    const alone =
      this._chosen.size === (runId === null ? 0 : 1) &&
      (runId === null || this._chosen.has(runId));
    if (runId === this._selected && alone) {
      return;
    }
    this._chosen = new Set(runId === null ? [] : [runId]);
    this._anchor = runId;
    this._show(runId);
  }

  /** Whether "Compare images" applies may have changed (a command came or went). */
  updateActions(): void {
    this._renderSelection();
  }

  /** Show `runId`'s images (the last run clicked) and save the state. */
  private _show(runId: string | null): void {
    const changed = runId !== this._selected;
    this._selected = runId;
    this._renderRuns();
    this._actions.stateChanged(this.state);
    if (changed) {
      void this._thumbnails.show(runId);
    }
  }

  /** A click on a row: alone, Ctrl/Cmd toggles it, Shift selects the range
   * from the last run clicked. */
  private _onClick(runId: string, event: MouseEvent): void {
    if (event.shiftKey) {
      this._selectRange(runId);
    } else if (event.ctrlKey || event.metaKey) {
      this._toggleChosen(runId);
    } else {
      this.select(runId);
    }
  }

  /** Ctrl-click: the run joins or leaves the selection. */
  private _toggleChosen(runId: string): void {
    if (this._chosen.has(runId)) {
      this._chosen.delete(runId);
      const next = runId === this._selected ? this.chosen[0] : this._selected;
      this._show(next ?? null);
    } else {
      this._chosen.add(runId);
      this._show(runId);
    }
    this._anchor = runId;
  }

  /** Shift-click: every listed run from the anchor to this one. */
  private _selectRange(runId: string): void {
    const order = this._listedIds();
    const from = order.indexOf(this._anchor ?? runId);
    const to = order.indexOf(runId);
    if (from < 0 || to < 0) {
      this.select(runId);
      return;
    }
    const [low, high] = from < to ? [from, to] : [to, from];
    this._chosen = new Set(order.slice(low, high + 1));
    this._show(runId);
  }

  /** The run keys as the list shows them now, top to bottom. */
  private _listedIds(): string[] {
    return [...this._runList.children].map(
      item => (item as HTMLElement).dataset.runId ?? ''
    );
  }

  /** Move the keyboard focus to the run list (its selected run, else its first
   * run, else the filter): where the runs TensorBoard shows are changed. */
  focusRuns(): void {
    const selected = this._selected ? this._items.get(this._selected) : null;
    const target =
      selected ??
      (this._runList.firstElementChild as HTMLElement | null) ??
      this._filter;
    target.focus();
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
    header.append(this._tbState, this._tbWarnings);
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
    // Short enough for the narrowest sidebar; the whole rule is its tooltip.
    this._filter.placeholder = 'Filter runs';
    this._filter.title = 'Filter runs by id, operation, label or status';
    this._filter.setAttribute('aria-label', 'Filter runs');
    this._filter.addEventListener('input', () => {
      // One request once the typing pauses, not one per key.
      window.clearTimeout(this._filterTimer);
      this._filterTimer = window.setTimeout(
        () => void this._loadFiltered(),
        FILTER_DEBOUNCE_MS
      );
      this._actions.stateChanged(this.state);
      this._renderSelection();
    });

    this._runList.setAttribute('role', 'listbox');
    this._runList.setAttribute('aria-label', 'Runs');
    this._runList.setAttribute('aria-multiselectable', 'true');
    this._runList.addEventListener('keydown', event => this._onKey(event));

    this._indexing.setAttribute('role', 'status');
    this._indexing.hidden = true;
    void this._sources.load();
    node.append(
      header,
      this._sources.node,
      this._filter,
      this._buildSelection(),
      this._indexing,
      this._message,
      this._runList,
      this._thumbnails.node
    );
  }

  /** "In TensorBoard: 12 of 200 runs" and the three ways to change it. */
  private _buildSelection(): HTMLElement {
    const box = el('div', 'guildimg-sidebar-selection');
    this._selectionText.setAttribute('role', 'status');
    this._only.addEventListener('click', () => {
      const runs = this._theseRuns();
      if (runs.length) {
        void this._change(() => ({ mode: 'runs', runs }));
      }
    });
    this._addFiltered.addEventListener('click', () => {
      const query = this._filter.value.trim();
      if (query) {
        void this._change(async () => {
          const matching = await this.model.api.runs(undefined, query);
          const runs = this.model.shownRuns();
          const known = new Set(runs);
          for (const run of matching) {
            if (!known.has(run.id)) {
              runs.push(run.id);
            }
          }
          return { mode: 'runs', runs: this._ordered(runs) };
        });
      }
    });
    this._auto.addEventListener(
      'click',
      () => void this._change(() => ({ mode: 'auto' }))
    );
    const buttons = el('div', 'guildimg-sidebar-selection-actions');
    buttons.append(this._only, this._addFiltered, this._auto);
    this._compare.addEventListener('click', () => {
      const runs = this.chosen;
      if (runs.length > 1) {
        this._actions.compare(runs);
      }
    });
    box.append(this._selectionText, buttons, this._compare);
    return box;
  }

  /** The runs "Only these" keeps: the selected runs when several are, else
   * those the filter lists, else the selected run. */
  private _theseRuns(): string[] {
    if (this._chosen.size > 1) {
      return this.chosen;
    }
    if (this._query && this._filtered) {
      return this._filtered.map(run => run.id);
    }
    return this._selected ? [this._selected] : [];
  }

  /** Run keys in the run list's order (newest first); unknown ones last. */
  private _ordered(keys: string[]): string[] {
    const index = new Map(this.model.runs.map((run, i) => [run.id, i]));
    const rank = (key: string) => index.get(key) ?? Number.MAX_SAFE_INTEGER;
    return [...keys].sort((a, b) => rank(a) - rank(b));
  }

  /** Put the selection `make` answers, after the changes asked before it (so a
   * quick second click builds on the first's answer, not on a stale list).
   * Resolves once done; a refused change is the model's error message. */
  private _change(
    make: () => ISelectionChange | Promise<ISelectionChange>
  ): Promise<void> {
    const next = this._changes.then(async () => {
      try {
        await this.model.changeSelection(await make());
      } catch {
        // The model shows the server's message; the rows show its selection.
      }
    });
    this._changes = next;
    return next;
  }

  /** A row's checkbox: that run joins or leaves the runs TensorBoard shows. */
  private _toggle(runId: string, wanted: boolean): void {
    this._pending.set(runId, wanted);
    this._renderRuns();
    void this._change(() => {
      const runs = this.model.shownRuns().filter(key => key !== runId);
      if (wanted) {
        runs.push(runId);
      }
      return { mode: 'runs', runs: this._ordered(runs) };
    }).then(() => {
      if (this._pending.get(runId) === wanted) {
        this._pending.delete(runId);
      }
      this._renderRuns();
    });
  }

  /** Which runs TensorBoard shows, and whether each action applies now. */
  private _renderSelection(): void {
    const selection = this.model.selection;
    this._selectionText.textContent = selection
      ? `In TensorBoard: ${selectionCount(selection)}`
      : 'In TensorBoard: …';
    this._selectionText.title = selection ? selectionRule(selection) : '';
    const auto = selection?.mode === 'auto';
    this._auto.setAttribute('aria-pressed', String(auto));
    this._auto.disabled = auto;
    const these = this._theseRuns();
    this._only.disabled = these.length === 0;
    this._only.title =
      this._chosen.size > 1
        ? `TensorBoard shows only the ${these.length} selected runs`
        : this._query
          ? `TensorBoard shows only the ${these.length} runs listed`
          : 'TensorBoard shows only the selected run (or, with a filter, the runs listed)';
    this._addFiltered.disabled = !this._filter.value.trim();
    // Comparing needs two runs and the image workbench's command.
    const count = this._chosen.size;
    this._compare.hidden = count < 2 || !this._actions.canCompare();
    this._compare.textContent = `Compare images (${count} runs)`;
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
    // What would make TensorBoard drop runs, said plainly (with the fix).
    const warnings = state.warnings ?? [];
    this._tbWarnings.replaceChildren(
      ...warnings.map(text => el('p', 'guildimg-warning', text))
    );
    this._tbWarnings.hidden = warnings.length === 0;
  }

  /** The runs changed on the server: the filtered list is fetched again. More
   * runs than before may be a full pass indexing many new ones: its progress is
   * asked for. */
  private _onRunsChanged(): void {
    if (this._query) {
      void this._loadFiltered();
    }
    const count = this.model.runs.length;
    if (count > this._runsSeen) {
      void this._followIndex();
    }
    this._runsSeen = count;
    this._renderRuns();
  }

  /** The monitor's index progress (not in the change feed): asked for every
   * second while it indexes, shown above the run list until it is done. One
   * loop at a time; a server that does not answer (or an older one, without
   * `index`) shows nothing. */
  private async _followIndex(): Promise<void> {
    if (this._indexFollowed) {
      return;
    }
    this._indexFollowed = true;
    try {
      while (!this.isDisposed) {
        let index: IIndexProgress | undefined;
        try {
          index = (await this.model.api.status()).monitor.index;
        } catch {
          index = undefined; // the model's own requests report the error
        }
        this._renderIndex(index);
        if (!index || index.done) {
          return;
        }
        await new Promise(resolve => setTimeout(resolve, INDEX_POLL_MS));
      }
    } finally {
      this._indexFollowed = false;
    }
  }

  private _renderIndex(index: IIndexProgress | undefined): void {
    if (this.isDisposed) {
      return;
    }
    const text = index && !index.done ? indexingText(index) : '';
    if (text !== this._indexing.textContent) {
      this._indexing.textContent = text;
      this._indexing.hidden = !text;
      this._renderRuns(); // "No runs yet" is not said while indexing
    }
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
    this._renderSelection();
    // The filtered list's in_tensorboard may be older than the model's.
    const inTensorBoard = new Map(
      runs.map(run => [run.id, run.in_tensorboard])
    );
    const seen = new Set<string>();
    let previous: Element | null = null;
    // What tells the listed runs apart: the rows show those flags.
    const differing = differingFlags(shown);
    for (const run of shown) {
      seen.add(run.id);
      let item = this._items.get(run.id);
      if (!item) {
        item = this._makeItem(run.id);
        this._items.set(run.id, item);
      }
      const inTb =
        this._pending.get(run.id) ??
        inTensorBoard.get(run.id) ??
        run.in_tensorboard;
      fillRow(item, run, {
        selected: this._chosen.has(run.id),
        inTensorBoard: inTb,
        differing
      });
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
    } else if (total === 0 && this.model.loaded && this._indexing.hidden) {
      text =
        'No runs yet in the watched sources (above). Runs appear here as soon as they start.';
      this._sources.open();
    } else if (shown === 0 && total > 0) {
      text = `No run matches "${this._query}" (${total} runs).`;
    }
    this._message.className = 'guildimg-sidebar-message';
    this._message.classList.toggle('guildimg-mod-error', Boolean(error));
    this._message.textContent = text;
    this._message.hidden = !text;
  }

  private _makeItem(runId: string): HTMLLIElement {
    const item = makeRow(runId);
    const check = item.querySelector('input') as HTMLInputElement;
    // A click on the box toggles; a click anywhere else on the row selects.
    check.addEventListener('click', event => event.stopPropagation());
    check.addEventListener('change', () => this._toggle(runId, check.checked));
    item.addEventListener('click', event => this._onClick(runId, event));
    return item;
  }

  private _onKey(event: KeyboardEvent): void {
    const items = [...this._runList.children] as HTMLElement[];
    const row = (event.target as HTMLElement).closest('li.guildimg-run');
    const index = items.indexOf(row as HTMLElement);
    if (index < 0) {
      return;
    }
    if (event.target instanceof HTMLInputElement && event.key === ' ') {
      return; // a focused checkbox toggles itself
    }
    const runId = items[index].dataset.runId ?? null;
    let next = index;
    const toggle = event.ctrlKey || event.metaKey;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      const step = event.key === 'ArrowDown' ? 1 : -1;
      next = Math.max(0, Math.min(items.length - 1, index + step));
      if (event.shiftKey) {
        // Shift+arrow: the selection grows (or shrinks) with the focus.
        if (this._anchor === null && runId) {
          this._anchor = runId;
        }
        this._selectRange(items[next].dataset.runId ?? '');
      }
    } else if ((event.key === 'Enter' || event.key === ' ') && toggle) {
      if (runId) {
        this._toggleChosen(runId);
      }
    } else if (event.key === 'Enter' || event.key === ' ') {
      this.select(runId);
    } else if (event.key === 'a' && toggle) {
      // Ctrl+A: every listed run.
      this._chosen = new Set(this._listedIds());
      this._anchor = runId;
      this._show(runId);
    } else if (event.key === 't' && runId) {
      const check = items[index].querySelector('input');
      if (check) {
        this._toggle(runId, !check.checked);
      }
    } else {
      return;
    }
    event.preventDefault();
    items[next].focus();
  }

  private _selected: string | null = null;
  /** Every selected run, and where a Shift-click's range starts. */
  private _chosen = new Set<string>();
  private _anchor: string | null = null;
  private _sources = new SourcesSection(this.model);
  private _compare = button(
    'guildimg-sidebar-compare',
    'Compare images',
    'The same images of the selected runs side by side'
  );
  /** The filter text the shown list answers ('' for every run), and that list. */
  private _query = '';
  private _filtered: IRun[] | null = null;
  private _filterAsked = 0;
  private _filterTimer = 0;
  /** Whether the index progress is being followed, and the run count last seen. */
  private _indexFollowed = false;
  private _runsSeen = 0;
  /** Styled as the list's message, but not that message: tests and screen readers
   * tell the two apart. */
  private _indexing = el('div', 'guildimg-sidebar-indexing');
  private _clock: number;
  private _items = new Map<string, HTMLLIElement>();
  /** Checkboxes clicked whose change the server has not answered yet. */
  private _pending = new Map<string, boolean>();
  private _changes: Promise<void> = Promise.resolve();
  private _tbState = el('div', 'guildimg-sidebar-tb', 'TensorBoard: …');
  private _tbWarnings = el('div', 'guildimg-sidebar-tb-warnings');
  private _selectionText = el('span', 'guildimg-sidebar-selection-text');
  private _only = button(
    'guildimg-sidebar-only',
    'Only these',
    'TensorBoard shows only these runs'
  );
  private _addFiltered = button(
    'guildimg-sidebar-add-filtered',
    'Add filtered runs',
    'TensorBoard shows the runs the filter lists too'
  );
  private _auto = button(
    'guildimg-sidebar-auto',
    'Auto',
    'TensorBoard shows the runs its policy picks (the newest, and every running run)'
  );
  private _filter = document.createElement('input');
  private _message = el('div', 'guildimg-sidebar-message');
  private _runList = el('ul', 'guildimg-sidebar-runs');
  private _thumbnails = new RunThumbnails(this.model.api, (runId, path) =>
    this._actions.openImage(runId, path)
  );
}

/** How often the index progress is asked for while the monitor indexes. */
const INDEX_POLL_MS = 1000;

/** "Indexing 1,200 of 10,000 runs…" ("Indexing runs…" until the pass listed them). */
export function indexingText(index: IIndexProgress): string {
  return index.found > 0
    ? `Indexing ${formatCount(index.indexed)} of ${formatCount(index.found)} runs…`
    : 'Indexing runs…';
}

/** How long the filter waits for the typing to pause before asking the server. */
const FILTER_DEBOUNCE_MS = 250;
