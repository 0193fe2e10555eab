/**
 * The TensorBoard tab: the proxied TensorBoard page in an iframe, once it is
 * ready. Until then it shows the server's summary of TensorBoard's state
 * ("Starting TensorBoard…"); a failure adds TensorBoard's stderr (or the whole
 * reason) and a Retry button. Above the page, always: which runs TensorBoard
 * shows ("12 of 10,000 runs · change") and the server's warnings about it.
 */
import { IFrame } from '@jupyterlab/ui-components';
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

export class TensorBoardView extends Panel {
  /** `changeRuns`: what "change" does (the sidebar's run list, where the runs
   * TensorBoard shows are picked); without it there is no "change". */
  constructor(
    readonly model: GuildImgModel,
    changeRuns?: () => void
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
    void this.start();
  }

  /** Start TensorBoard unless it runs; the model's state changes render it. */
  async start(): Promise<void> {
    this._retry.disabled = true;
    try {
      await this.model.startTensorBoard();
    } finally {
      this._retry.disabled = false;
    }
  }

  /** Load TensorBoard's page again (after a TensorBoard restart, say). */
  reload(): void {
    if (this._frame.url) {
      this._frame.url = '';
    }
    this._render(this.model.tensorBoard);
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
    const status = state?.status ?? 'starting';
    this.node.dataset.status = status;
    if (status === 'ready') {
      this._status.hide();
      this._frame.show();
      if (!this._frame.url) {
        this._frame.url = this.model.api.tensorBoardUrl;
      }
      return;
    }
    // A TensorBoard that went away takes its page with it; load it afresh later.
    this._frame.url = '';
    this._frame.hide();
    this._status.show();
    this._statusText.textContent = state?.summary ?? '';
    this._details.textContent = '';
    this._retry.hidden = status === 'starting';
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
