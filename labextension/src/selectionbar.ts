/**
 * What the sidebar says about TensorBoard: its state and warnings (in the
 * header), and the "In TensorBoard: 12 of 200 runs" bar with the ways to
 * change which runs it shows ("Only these", "Add filtered runs", "Auto") and
 * "Compare images". Changes are put one after another, each on the answer of
 * the one before.
 */
import { ISelectionChange, ITensorBoardState } from './api';
import { button, el, selectionCount, selectionRule } from './dom';
import { GuildImgModel } from './model';
import { inListOrder } from './runlist';

/** TensorBoard's state and the warnings about runs it would drop. */
export class TensorBoardStatus {
  readonly state = el('div', 'guildimg-sidebar-tb', 'TensorBoard: …');
  readonly warnings = el('div', 'guildimg-sidebar-tb-warnings');

  constructor() {
    this.state.setAttribute('role', 'status');
  }

  /** TensorBoard's state, in the server's words (`summary`: the same sentence
   * every client shows). */
  render(state: ITensorBoardState): void {
    this.state.className = 'guildimg-sidebar-tb';
    this.state.dataset.status = state.status;
    this.state.textContent = state.summary || state.status;
    this.state.title = state.reason;
    // What would make TensorBoard drop runs, said plainly (with the fix).
    const warnings = state.warnings ?? [];
    this.warnings.replaceChildren(
      ...warnings.map(text => el('p', 'guildimg-warning', text))
    );
    this.warnings.hidden = warnings.length === 0;
  }
}

/** What the selection bar asks of the sidebar. */
export interface ISelectionBarHost {
  /** The runs "Only these" keeps now. */
  theseRuns(): string[];
  /** The selected runs (run keys, in the list's order). */
  chosen(): string[];
  /** The filter text the listed runs answer ('' for every run). */
  query(): string;
  /** The filter text as typed (maybe not asked yet). */
  filterText(): string;
  /** Whether "Compare images" can be done (its command is registered). */
  canCompare(): boolean;
  /** Compare the images of these runs (run keys, in the list's order). */
  compare(runs: string[]): void;
}

/** "In TensorBoard: 12 of 200 runs" and the three ways to change it. */
export class SelectionBar {
  readonly node = el('div', 'guildimg-sidebar-selection');

  constructor(
    private readonly _model: GuildImgModel,
    private readonly _host: ISelectionBarHost
  ) {
    this._text.setAttribute('role', 'status');
    this._only.addEventListener('click', () => {
      const runs = this._host.theseRuns();
      if (runs.length) {
        void this.change(() => ({ mode: 'runs', runs }));
      }
    });
    this._addFiltered.addEventListener('click', () => {
      const query = this._host.filterText().trim();
      if (query) {
        void this.change(async () => {
          const matching = await this._model.api.runs(undefined, query);
          const runs = this._model.shownRuns();
          const known = new Set(runs);
          for (const run of matching) {
            if (!known.has(run.id)) {
              runs.push(run.id);
            }
          }
          return { mode: 'runs', runs: inListOrder(this._model.runs, runs) };
        });
      }
    });
    this._auto.addEventListener(
      'click',
      () => void this.change(() => ({ mode: 'auto' }))
    );
    const buttons = el('div', 'guildimg-sidebar-selection-actions');
    buttons.append(this._only, this._addFiltered, this._auto);
    this._compare.addEventListener('click', () => {
      const runs = this._host.chosen();
      if (runs.length > 1) {
        this._host.compare(runs);
      }
    });
    this.node.append(this._text, buttons, this._compare);
  }

  /** Put the selection `make` answers, after the changes asked before it (so a
   * quick second click builds on the first's answer, not on a stale list).
   * Resolves once done; a refused change is the model's error message. */
  change(
    make: () => ISelectionChange | Promise<ISelectionChange>
  ): Promise<void> {
    const next = this._changes.then(async () => {
      try {
        await this._model.changeSelection(await make());
      } catch {
        // The model shows the server's message; the rows show its selection.
      }
    });
    this._changes = next;
    return next;
  }

  /** Which runs TensorBoard shows, and whether each action applies now. */
  render(): void {
    const selection = this._model.selection;
    this._text.textContent = selection
      ? `In TensorBoard: ${selectionCount(selection)}`
      : 'In TensorBoard: …';
    this._text.title = selection ? selectionRule(selection) : '';
    const auto = selection?.mode === 'auto';
    this._auto.setAttribute('aria-pressed', String(auto));
    this._auto.disabled = auto;
    const these = this._host.theseRuns();
    const count = this._host.chosen().length;
    this._only.disabled = these.length === 0;
    this._only.title =
      count > 1
        ? `TensorBoard shows only the ${these.length} selected runs`
        : this._host.query()
          ? `TensorBoard shows only the ${these.length} runs listed`
          : 'TensorBoard shows only the selected run (or, with a filter, the runs listed)';
    this._addFiltered.disabled = !this._host.filterText().trim();
    // Comparing needs two runs and the image workbench's command.
    this._compare.hidden = count < 2 || !this._host.canCompare();
    this._compare.textContent = `Compare images (${count} runs)`;
  }

  private _changes: Promise<void> = Promise.resolve();
  private _text = el('span', 'guildimg-sidebar-selection-text');
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
  private _compare = button(
    'guildimg-sidebar-compare',
    'Compare images',
    'The same images of the selected runs side by side'
  );
}
