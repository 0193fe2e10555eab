/**
 * The left-sidebar panel: TensorBoard's state and warnings, Refresh, a filter,
 * which runs TensorBoard shows (with "Only these", "Add filtered runs", "Auto"),
 * while the monitor indexes, how far it is ("Indexing 1,200 of 10,000 runs…"),
 * the runs (newest first, live from the change feed, each with its "in
 * TensorBoard" checkbox) and the selected run's thumbnails.
 * The filter is the server's (`GET runs?q=`): the sidebar only shows its answer.
 * This module puts the parts together and keeps the filter, the index progress
 * and the state saved across a reload; the parts are `SourcesSection`
 * (sources.ts), `TensorBoardStatus` and `SelectionBar` (selectionbar.ts),
 * `RunList` (runlist.ts) and `RunThumbnails` (thumbnails.ts).
 */
import { Widget } from '@lumino/widgets';

import { IIndexProgress, IRun, ITensorBoardState } from './api';
import { button, el, formatCount } from './dom';
import { GuildImgModel } from './model';
import { inListOrder, RunList } from './runlist';
import { SelectionBar, TensorBoardStatus } from './selectionbar';
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
    model.selectionChanged.connect(() => this._bar.render(), this);
    // "3 min ago" ages while nothing else changes.
    this._clock = window.setInterval(() => this._renderRuns(), 30_000);
    this._renderRuns();
    if (model.tensorBoard) {
      this._onTensorBoard(model, model.tensorBoard);
    }
    this._bar.render();
    void this._followIndex();
  }

  get state(): ISidebarState {
    return {
      selected: this._list.selected,
      filter: this._filter.value,
      chosen: [...this._list.chosen]
    };
  }

  /** The selected runs (run keys, in the list's order). */
  get chosen(): string[] {
    return inListOrder(this.model.runs, [...this._list.chosen]);
  }

  /** Restore a saved state (after a reload): filter text and selected runs. */
  restore(state: Partial<ISidebarState>): void {
    this._filter.value = state.filter ?? '';
    void this._loadFiltered();
    this._renderRuns();
    if (state.selected) {
      this.select(state.selected);
    }
    this._list.addChosen(state.chosen ?? []);
    this._renderRuns();
  }

  /** Select a run alone and show its images (null: none). */
  select(runId: string | null): void {
    this._list.select(runId);
  }

  /** Whether "Compare images" applies may have changed (a command came or went). */
  updateActions(): void {
    this._bar.render();
  }

  /** Move the keyboard focus to the run list (its selected run, else its first
   * run, else the filter): where the runs TensorBoard shows are changed. */
  focusRuns(): void {
    const target = this._list.focusTarget() ?? this._filter;
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

  /** The run list shows `runId`'s images now (the last run clicked): render
   * and save the state. */
  private _show(runId: string | null, changed: boolean): void {
    this._renderRuns();
    this._actions.stateChanged(this.state);
    if (changed) {
      void this._thumbnails.show(runId);
    }
  }

  private _build(): void {
    const node = this.node;
    const header = el('div', 'guildimg-sidebar-header');
    header.append(el('h2', 'guildimg-sidebar-title', 'Guild Images'));
    header.append(this._tb.state, this._tb.warnings);
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
      this._bar.render();
    });

    this._indexing.setAttribute('role', 'status');
    this._indexing.hidden = true;
    void this._sources.load();
    node.append(
      header,
      this._sources.node,
      this._filter,
      this._bar.node,
      this._indexing,
      this._message,
      this._list.node,
      this._thumbnails.node
    );
  }

  /** The runs "Only these" keeps: the selected runs when several are, else
   * those the filter lists, else the selected run. */
  private _theseRuns(): string[] {
    if (this._list.chosen.size > 1) {
      return this.chosen;
    }
    if (this._query && this._filtered) {
      return this._filtered.map(run => run.id);
    }
    const selected = this._list.selected;
    return selected ? [selected] : [];
  }

  private async _refresh(refresh: HTMLButtonElement): Promise<void> {
    refresh.disabled = true;
    try {
      await this.model.refresh();
    } finally {
      refresh.disabled = false;
    }
  }

  private _onTensorBoard(_: GuildImgModel, state: ITensorBoardState): void {
    this._tb.render(state);
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
    this._bar.render();
    this._list.render(runs, shown);
    const selected = this._list.selected;
    const known = runs.some(run => run.id === selected);
    if (selected && this.model.loaded && !known) {
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

  private _sources = new SourcesSection(this.model);
  private _tb = new TensorBoardStatus();
  private _bar = new SelectionBar(this.model, {
    theseRuns: () => this._theseRuns(),
    chosen: () => this.chosen,
    query: () => this._query,
    filterText: () => this._filter.value,
    canCompare: () => this._actions.canCompare(),
    compare: runs => this._actions.compare(runs)
  });
  private _list = new RunList(this.model, {
    show: (runId, changed) => this._show(runId, changed),
    render: () => this._renderRuns(),
    change: make => this._bar.change(make)
  });
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
  private _filter = document.createElement('input');
  private _message = el('div', 'guildimg-sidebar-message');
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
