/**
 * The state every view shares: the runs, TensorBoard's state and the runs it
 * shows (the selection), kept current by one long poll of the server's change
 * feed.
 */
import { ISignal, Signal } from '@lumino/signaling';

import {
  ApiError,
  GuildImgApi,
  IRun,
  ISelection,
  ISelectionChange,
  ITensorBoardState
} from './api';

/** Seconds the server holds a change-feed request open. */
const FEED_TIMEOUT = 25;
/** How often TensorBoard's state is asked for while it is starting. */
const STARTING_POLL_MS = 1000;

export class GuildImgModel {
  constructor(readonly api: GuildImgApi = new GuildImgApi()) {}

  get runs(): readonly IRun[] {
    return this._runs;
  }

  get tensorBoard(): ITensorBoardState | null {
    return this._tensorBoard;
  }

  /** The last error talking to the server, or '' once a request succeeded. */
  get error(): string {
    return this._error;
  }

  /** Whether the runs were fetched at least once (an empty list means no runs). */
  get loaded(): boolean {
    return this._loaded;
  }

  /** Emitted after the runs or the error changed (a monitor pass changed something). */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted as soon as the server reports a monitor pass that changed something
   * (or after Refresh), before the runs are fetched again: views showing images
   * fetch theirs at once, alongside the run list. */
  get passed(): ISignal<this, void> {
    return this._passed;
  }

  get tensorBoardChanged(): ISignal<this, ITensorBoardState> {
    return this._tensorBoardChanged;
  }

  /** The runs TensorBoard shows, or null until the server said. */
  get selection(): ISelection | null {
    return this._selection;
  }

  /** Emitted when the selection changed (here or, seen at the next change-feed
   * round, by another client). */
  get selectionChanged(): ISignal<this, ISelection> {
    return this._selectionChanged;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Fetch everything once, then follow the change feed until disposed. */
  start(): void {
    if (this._started) {
      return;
    }
    this._started = true;
    void this._follow();
  }

  /** A monitor pass now (the Refresh button), then the new state. */
  async refresh(): Promise<void> {
    try {
      await this.api.refresh();
    } catch (error) {
      this._setError(error);
    }
    this._passed.emit();
    await Promise.all([this.reload(), this.reloadTensorBoard()]);
  }

  /** The runs again; whether they could be read (else the error is shown). */
  async reload(): Promise<boolean> {
    try {
      this._runs = await this.api.runs();
      this._loaded = true;
      this._error = '';
    } catch (error) {
      this._setError(error);
      return false;
    }
    this._changed.emit();
    return true;
  }

  async reloadTensorBoard(): Promise<ITensorBoardState | null> {
    try {
      this._setTensorBoard(await this.api.tensorBoard());
    } catch (error) {
      this._setError(error);
    }
    return this._tensorBoard;
  }

  async reloadSelection(): Promise<ISelection | null> {
    try {
      this._setSelection(await this.api.getSelection());
    } catch {
      // The last selection stays shown; the runs' and TensorBoard's requests,
      // made alongside, report a server that does not answer.
    }
    return this._selection;
  }

  /** Change the runs TensorBoard shows; then the runs (their `in_tensorboard`)
   * and TensorBoard's state (its warnings) are fetched again. Rejects with the
   * server's error, which is also the model's `error`. */
  async changeSelection(change: ISelectionChange): Promise<ISelection> {
    let selection: ISelection;
    try {
      selection = await this.api.putSelection(change);
    } catch (error) {
      this._setError(error);
      throw error;
    }
    this._setSelection(selection);
    await Promise.all([this.reload(), this.reloadTensorBoard()]);
    return selection;
  }

  /** The run keys TensorBoard shows now: the selection's, else (not fetched
   * yet) those the run list marks. */
  shownRuns(): string[] {
    return this._selection
      ? [...this._selection.runs]
      : this._runs.filter(run => run.in_tensorboard).map(run => run.id);
  }

  /** Start TensorBoard unless it is ready or starting (the server decides, and
   * waits for a start in progress); resolves with its state once it is ready or
   * failed. */
  async startTensorBoard(): Promise<ITensorBoardState | null> {
    if (this._tensorBoard?.status !== 'ready') {
      this._setTensorBoard({
        ...(this._tensorBoard ?? EMPTY_STATE),
        status: 'starting',
        summary: 'Starting TensorBoard…',
        reason: ''
      });
    }
    try {
      this._setTensorBoard(await this.api.startTensorBoard());
    } catch (error) {
      this._setError(error);
      await this.reloadTensorBoard();
    }
    return this._tensorBoard;
  }

  dispose(): void {
    this._disposed = true;
    this._abort.abort();
    Signal.clearData(this);
  }

  /** Polls TensorBoard's state until it is no longer starting; one poll at a time. */
  private _waitWhileStarting(): Promise<ITensorBoardState | null> {
    if (!this._startingPoll) {
      this._startingPoll = (async () => {
        let state = this._tensorBoard;
        while (!this._disposed && state?.status === 'starting') {
          await sleep(STARTING_POLL_MS);
          state = await this.reloadTensorBoard();
        }
        this._startingPoll = null;
        return state;
      })();
    }
    return this._startingPoll;
  }

  private async _follow(): Promise<void> {
    let since = -1;
    let failures = 0;
    const [loaded] = await Promise.all([
      this.reload(),
      this.reloadTensorBoard(),
      this.reloadSelection()
    ]);
    // Runs that could not be read are read again after a pause, not only at
    // the monitor's next change (which may be minutes away).
    let stale = !loaded;
    while (!this._disposed) {
      if (stale) {
        failures += 1;
        await sleep(Math.min(30_000, 1000 * 2 ** Math.min(failures, 5)));
        if (this._disposed) {
          return;
        }
        stale = !(await this.reload());
        if (stale) {
          continue;
        }
        failures = 0;
      }
      let generation: number;
      try {
        generation = await this.api.changes(
          since,
          FEED_TIMEOUT,
          this._abort.signal
        );
        failures = 0;
      } catch (error) {
        if (this._disposed) {
          return;
        }
        this._setError(error);
        // A restarting or unreachable server: back off up to 30 s, then retry.
        failures += 1;
        await sleep(Math.min(30_000, 1000 * 2 ** Math.min(failures, 5)));
        continue;
      }
      const passed = since !== -1 && generation !== since;
      since = generation;
      if (passed) {
        this._passed.emit();
      }
      // TensorBoard's state and the selection (another client may change it)
      // are not in the change feed: look at them each round.
      const [reloaded, state] = await Promise.all([
        passed ? this.reload() : Promise.resolve(true),
        this.reloadTensorBoard(),
        this.reloadSelection()
      ]);
      stale = !reloaded;
      if (state?.status === 'starting') {
        void this._waitWhileStarting();
      }
    }
  }

  private _setTensorBoard(state: ITensorBoardState): void {
    const old = this._tensorBoard;
    this._tensorBoard = state;
    if (
      !old ||
      old.status !== state.status ||
      old.reason !== state.reason ||
      !sameStrings(old.warnings, state.warnings)
    ) {
      this._tensorBoardChanged.emit(state);
    }
  }

  private _setSelection(selection: ISelection): void {
    const old = this._selection;
    this._selection = selection;
    if (
      !old ||
      old.mode !== selection.mode ||
      old.filter !== selection.filter ||
      old.shown !== selection.shown ||
      old.total !== selection.total ||
      old.limit !== selection.limit ||
      !sameStrings(old.runs, selection.runs)
    ) {
      this._selectionChanged.emit(selection);
    }
  }

  private _setError(error: unknown): void {
    const message =
      error instanceof ApiError
        ? error.message
        : `Cannot reach the server: ${error}`;
    if (message !== this._error) {
      this._error = message;
      this._changed.emit();
    }
  }

  private _runs: IRun[] = [];
  private _tensorBoard: ITensorBoardState | null = null;
  private _selection: ISelection | null = null;
  private _error = '';
  private _loaded = false;
  private _started = false;
  private _startingPoll: Promise<ITensorBoardState | null> | null = null;
  private _disposed = false;
  private _abort = new AbortController();
  private _changed = new Signal<this, void>(this);
  private _passed = new Signal<this, void>(this);
  private _tensorBoardChanged = new Signal<this, ITensorBoardState>(this);
  private _selectionChanged = new Signal<this, ISelection>(this);
}

const EMPTY_STATE: ITensorBoardState = {
  status: 'stopped',
  summary: '',
  reason: '',
  port: null,
  pid: null,
  restarts: 0,
  stderr_tail: [],
  started: null,
  files: { needed: 0, limit: 0 },
  warnings: []
};

/** Whether two string lists are equal (an older server may send none). */
function sameStrings(a?: readonly string[], b?: readonly string[]): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length && x.every((item, i) => item === y[i]);
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}
