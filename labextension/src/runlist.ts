/**
 * The sidebar's run list: one row per run (newest first, kept in place without
 * rebuilding so the focus stays put), the multi-select (click, Ctrl/Cmd-click,
 * Shift-click, and the same from the keyboard) and each row's "in TensorBoard"
 * checkbox. The sidebar says which runs to list and what a change of selection
 * shows; a ticked box is put through the sidebar's selection changes.
 */
import { IRun, ISelectionChange } from './api';
import { el } from './dom';
import { GuildImgModel } from './model';
import { differingFlags, fillRow, makeRow } from './runrow';

/** What the run list asks of the sidebar. */
export interface IRunListHost {
  /** `runId` is now the run whose images are shown (the last one clicked);
   * `changed`: another run than before. The selection may have changed too. */
  show(runId: string | null, changed: boolean): void;
  /** Render the sidebar again (a row's pending state changed). */
  render(): void;
  /** Put the selection `make` answers, after the changes asked before it. */
  change(
    make: () => ISelectionChange | Promise<ISelectionChange>
  ): Promise<void>;
}

/** Run keys in the run list's order (newest first: `runs`); unknown ones last. */
export function inListOrder(runs: readonly IRun[], keys: string[]): string[] {
  const index = new Map(runs.map((run, i) => [run.id, i]));
  const rank = (key: string) => index.get(key) ?? Number.MAX_SAFE_INTEGER;
  return [...keys].sort((a, b) => rank(a) - rank(b));
}

export class RunList {
  readonly node = el('ul', 'guildimg-sidebar-runs');

  constructor(
    private readonly _model: GuildImgModel,
    private readonly _host: IRunListHost
  ) {
    this.node.setAttribute('role', 'listbox');
    this.node.setAttribute('aria-label', 'Runs');
    this.node.setAttribute('aria-multiselectable', 'true');
    this.node.addEventListener('keydown', event => this._onKey(event));
  }

  /** The run whose images are shown (the last one clicked). */
  get selected(): string | null {
    return this._selected;
  }

  /** Every selected run (multi-select), in the order they were selected. */
  get chosen(): ReadonlySet<string> {
    return this._chosen;
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

  /** Add runs to the selection (a restored state), without rendering. */
  addChosen(keys: Iterable<string>): void {
    for (const key of keys) {
      this._chosen.add(key);
    }
  }

  /** Where the keyboard focus goes in the list: the selected run's row, else
   * the first row, else null (no run listed). */
  focusTarget(): HTMLElement | null {
    const selected = this._selected ? this._items.get(this._selected) : null;
    return selected ?? (this.node.firstElementChild as HTMLElement | null);
  }

  /** Show `shown` (of the model's `runs`) as rows, newest first. */
  render(runs: readonly IRun[], shown: readonly IRun[]): void {
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
        : this.node.firstElementChild;
      if (expected !== item) {
        this.node.insertBefore(item, expected);
      }
      previous = item;
    }
    for (const [id, item] of this._items) {
      if (!seen.has(id)) {
        item.remove();
        this._items.delete(id);
      }
    }
  }

  /** Show `runId`'s images (the last run clicked) and save the state. */
  private _show(runId: string | null): void {
    const changed = runId !== this._selected;
    this._selected = runId;
    this._host.show(runId, changed);
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
      const next =
        runId === this._selected
          ? inListOrder(this._model.runs, [...this._chosen])[0]
          : this._selected;
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
    return [...this.node.children].map(
      item => (item as HTMLElement).dataset.runId ?? ''
    );
  }

  /** A row's checkbox: that run joins or leaves the runs TensorBoard shows. */
  private _toggle(runId: string, wanted: boolean): void {
    this._pending.set(runId, wanted);
    this._host.render();
    void this._host
      .change(() => {
        const runs = this._model.shownRuns().filter(key => key !== runId);
        if (wanted) {
          runs.push(runId);
        }
        return { mode: 'runs', runs: inListOrder(this._model.runs, runs) };
      })
      .then(() => {
        if (this._pending.get(runId) === wanted) {
          this._pending.delete(runId);
        }
        this._host.render();
      });
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
    const items = [...this.node.children] as HTMLElement[];
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
  private _items = new Map<string, HTMLLIElement>();
  /** Checkboxes clicked whose change the server has not answered yet. */
  private _pending = new Map<string, boolean>();
}
