/**
 * The TensorBoard tab: the proxied TensorBoard page in an iframe, once it is
 * ready. Until then it shows the server's summary of TensorBoard's state
 * ("Starting TensorBoard…"); a failure adds TensorBoard's stderr (or the whole
 * reason) and a Retry button. Above the page, always: which runs TensorBoard
 * shows ("12 of 10,000 runs · change") and the server's warnings about it.
 *
 * TensorBoard is started only once the tab is shown: a tab restored in the
 * background of a reloaded page starts nothing. TensorBoard's page follows
 * Lab's theme (light or dark), reloading when Lab's theme changes.
 */
import { IFrame } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Panel, Widget } from '@lumino/widgets';

import { ITensorBoardState } from './api';
import { button, el, selectionCount, selectionRule } from './dom';
import { GuildImgModel } from './model';

/** What TensorBoard's page needs inside the sandbox: its scripts, its own
 * (same-origin, proxied) XHRs, links opened in a new tab, forms and downloads
 * (CSV/JSON exports of its charts). */
const SANDBOX: IFrame.SandboxExceptions[] = [
  'allow-scripts',
  'allow-same-origin',
  'allow-popups',
  'allow-forms',
  'allow-downloads'
];

/** Where TensorBoard 2.x keeps its settings in the browser (`localStorage` of
 * its origin, which is Lab's: the proxy is on the page's own origin). Its
 * `theme` is "browser_default", "light" or "dark", and wins over the
 * `?darkMode=` query parameter (only a default). */
const TB_SETTINGS_KEY = '_tb_global_settings';

/** Whether JupyterLab shows a light theme now (JupyterLab sets the attribute on
 * the body; Notebook 7 too). Absent: light. */
export function labThemeIsLight(): boolean {
  return document.body.dataset.jpThemeLight !== 'false';
}

/** Make TensorBoard's stored theme Lab's (its other settings kept). Done before
 * its page loads, which reads it once. Returns the `darkMode` query value. */
export function followLabTheme(storage: Storage = window.localStorage): string {
  const dark = !labThemeIsLight();
  try {
    let settings: Record<string, unknown> = {};
    const stored = storage.getItem(TB_SETTINGS_KEY);
    if (stored) {
      const parsed: unknown = JSON.parse(stored);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
        settings = parsed as Record<string, unknown>;
      }
    }
    settings.theme = dark ? 'dark' : 'light';
    storage.setItem(TB_SETTINGS_KEY, JSON.stringify(settings));
  } catch (error) {
    // Storage refused (private mode, quota): the query parameter still says it.
    console.warn('jupyter-guildimg: cannot set TensorBoard theme', error);
  }
  return String(dark);
}

export class TensorBoardView extends Panel {
  /** `changeRuns`: what "change" does (the sidebar's run list, where the runs
   * TensorBoard shows are picked); without it there is no "change". `restored`:
   * when the page's saved layout is in place (the app's `restored`): until then
   * a tab may be shown for a moment while the layout is rebuilt, and starts
   * nothing. */
  constructor(
    readonly model: GuildImgModel,
    changeRuns?: () => void,
    restored: Promise<unknown> = Promise.resolve()
  ) {
    super();
    this.id = 'guildimg-tensorboard';
    this.addClass('guildimg-tensorboard');
    this.title.label = 'TensorBoard';
    this.title.caption = 'TensorBoard on the watched runs';
    this._frame.addClass('guildimg-tensorboard-frame');
    this._frame.hide();
    this._retry.addEventListener('click', () => void this.start());
    this._status.node.append(this._statusText, this._details, this._retry);
    this._status.addClass('guildimg-tensorboard-status');
    this._buildBar(changeRuns);
    this.addWidget(this._bar);
    this.addWidget(this._status);
    this.addWidget(this._frame);
    model.tensorBoardChanged.connect((_, state) => this._render(state), this);
    model.selectionChanged.connect(() => this._renderSelection(), this);
    this._render(model.tensorBoard);
    this._renderSelection();
    void restored.then(() => {
      this._layoutRestored = true;
      this._startIfShown();
    });
    // Lab's theme changed: TensorBoard's page loads again in the new one.
    this._themeObserver.observe(document.body, {
      attributes: true,
      attributeFilter: ['data-jp-theme-light']
    });
  }

  /** Whether the tab asked for TensorBoard yet (it does once first shown). */
  get startAsked(): boolean {
    return this._shownOnce;
  }

  /** Start TensorBoard unless it runs; the model's state changes render it. */
  async start(): Promise<void> {
    this._retry.disabled = true;
    this._starting = true;
    this._render(this.model.tensorBoard);
    try {
      await this.model.startTensorBoard();
    } finally {
      this._starting = false;
      this._retry.disabled = false;
      if (!this.isDisposed) {
        this._render(this.model.tensorBoard);
      }
    }
  }

  /** Load TensorBoard's page again (after a TensorBoard restart, say). */
  reload(): void {
    if (this._frame.url) {
      this._frame.url = '';
    }
    this._render(this.model.tensorBoard);
  }

  dispose(): void {
    this._themeObserver.disconnect();
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._startIfShown();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._startIfShown();
  }

  /** The first time the tab is visible, TensorBoard is started (a tab restored
   * behind another one waits until it is picked). */
  private _startIfShown(): void {
    if (this._shownOnce || !this._layoutRestored || !this.isVisible) {
      return;
    }
    this._shownOnce = true;
    void this.start();
  }

  private _onThemeChanged(): void {
    const light = labThemeIsLight();
    if (light === this._light) {
      return;
    }
    this._light = light;
    if (this._frame.url) {
      this.reload();
    }
  }

  private _buildBar(changeRuns?: () => void): void {
    this._bar.addClass('guildimg-tensorboard-bar');
    const line = el('div', 'guildimg-tensorboard-selection');
    this._selectionText.setAttribute('role', 'status');
    line.append(this._selectionText, this._selectionRule);
    if (changeRuns) {
      const change = button(
        'guildimg-tensorboard-change',
        'change',
        'Pick the runs TensorBoard shows, in the Guild Images sidebar'
      );
      change.addEventListener('click', () => changeRuns());
      line.append(el('span', 'guildimg-tensorboard-sep', ' · '), change);
    }
    this._warnings.setAttribute('role', 'alert');
    this._warnings.hidden = true;
    this._bar.node.append(line, this._warnings);
  }

  /** "12 of 10,000 runs (auto: …)". */
  private _renderSelection(): void {
    const selection = this.model.selection;
    this._selectionText.textContent = selection
      ? selectionCount(selection)
      : 'Runs shown: …';
    this._selectionRule.textContent = selection
      ? ` (${selectionRule(selection)})`
      : '';
  }

  /** The server's warnings (too many files to open, unreadable files…), in
   * its words, whatever TensorBoard's status. */
  private _renderWarnings(state: ITensorBoardState | null): void {
    const warnings = state?.warnings ?? [];
    this._warnings.replaceChildren(
      ...warnings.map(text => el('p', 'guildimg-warning', text))
    );
    this._warnings.hidden = warnings.length === 0;
  }

  private _render(state: ITensorBoardState | null): void {
    this._renderWarnings(state);
    let status = state?.status ?? 'stopped';
    if (this._starting && status !== 'ready' && status !== 'failed') {
      // Asked to start: the server may not say "starting" yet.
      status = 'starting';
    }
    this.node.dataset.status = status;
    if (status === 'ready' && this._shownOnce) {
      this._status.hide();
      this._frame.show();
      if (!this._frame.url) {
        // The theme is set where TensorBoard reads it before its page loads.
        this._light = labThemeIsLight();
        const dark = followLabTheme();
        this._frame.url = `${this.model.api.tensorBoardUrl}?darkMode=${dark}`;
      }
      return;
    }
    // A TensorBoard that went away takes its page with it; load it afresh later.
    this._frame.url = '';
    this._frame.hide();
    this._status.show();
    this._statusText.textContent =
      status === 'starting'
        ? 'Starting TensorBoard…'
        : !this._shownOnce
          ? 'TensorBoard starts when this tab is shown.'
          : (state?.summary ?? '');
    this._details.textContent = '';
    // While it starts, the message alone (no button beside it).
    this._retry.hidden = status === 'starting' || status === 'ready';
    if (status === 'failed') {
      // TensorBoard's own words; without them, the whole reason (the summary
      // has only its first sentence).
      const stderr = (state?.stderr_tail ?? []).join('\n');
      this._details.textContent = stderr || state?.reason || '';
      this._retry.textContent = 'Retry';
    } else {
      this._retry.textContent = 'Start TensorBoard';
    }
  }

  /** Whether the tab was shown once (and so asked TensorBoard to start), a
   * start of its own is in progress, the page's saved layout is in place, and
   * the theme TensorBoard's page has. */
  private _shownOnce = false;
  private _starting = false;
  private _layoutRestored = false;
  private _light = labThemeIsLight();
  private _themeObserver = new MutationObserver(() => this._onThemeChanged());
  private _frame = new IFrame({
    sandbox: SANDBOX,
    referrerPolicy: 'same-origin'
  });
  private _bar = new Widget();
  private _selectionText = el('span', 'guildimg-tensorboard-count');
  private _selectionRule = el('span', 'guildimg-tensorboard-rule');
  private _warnings = el('div', 'guildimg-tensorboard-warnings');
  private _status = new Widget();
  private _statusText = el('p', 'guildimg-tensorboard-message');
  private _details = el('pre', 'guildimg-tensorboard-details');
  private _retry = button(
    'guildimg-tensorboard-retry',
    'Retry',
    'Start TensorBoard again'
  );
}
