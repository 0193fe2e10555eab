/**
 * The sidebar's "Watched sources" section: which folders the server's monitor
 * watches (a Guild home, `runs/`, `lightning_logs/`…), a field to add one (the
 * server validates it: a relative path is taken against the server's root
 * directory, and its refusal is shown under the field, in its words) and a
 * remove button per source (after a confirmation). Collapsible; open while
 * nothing is listed, so a new user sees what is watched.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';

import { ApiError, ISourceInfo, ISources } from './api';
import { button, el } from './dom';
import { GuildImgModel } from './model';

export class SourcesSection {
  readonly node = el('details', 'guildimg-sources');

  constructor(private readonly _model: GuildImgModel) {
    const summary = el('summary', 'guildimg-sources-summary');
    summary.append(this._title);
    this._list.setAttribute('aria-label', 'Watched sources');
    const form = el('form', 'guildimg-sources-add');
    this._input.type = 'text';
    this._input.className = 'guildimg-sources-input jp-mod-styled';
    this._input.placeholder = 'Folder to watch';
    this._input.title =
      'A folder of runs or a Guild home (guild:PATH); relative to the root directory';
    this._input.setAttribute('aria-label', 'Folder to watch');
    this._add.type = 'submit';
    form.append(this._input, this._add);
    form.addEventListener('submit', event => {
      event.preventDefault();
      void this._addSource();
    });
    this._error.setAttribute('role', 'alert');
    this._error.hidden = true;
    this.node.append(summary, this._list, form, this._error);
  }

  /** The sources, as the server lists them now. */
  get sources(): readonly ISourceInfo[] {
    return this._sources;
  }

  /** Ask the server for the watched sources; a failure keeps the last list. */
  async load(): Promise<void> {
    try {
      this._render(await this._model.api.sourceList());
    } catch {
      // The model's own requests report a server that does not answer.
    }
  }

  /** Open the section (the run list is empty: what is watched matters). */
  open(): void {
    this.node.open = true;
  }

  private async _addSource(): Promise<void> {
    const path = this._input.value.trim();
    if (!path) {
      return;
    }
    this._add.disabled = true;
    this._showError('');
    try {
      this._render(await this._model.api.addSource(path));
      this._input.value = '';
      // A pass now: the new source's runs are listed at once.
      await this._model.refresh();
    } catch (error) {
      this._showError(
        error instanceof ApiError
          ? error.message
          : `Cannot add "${path}": ${error}`
      );
    } finally {
      this._add.disabled = false;
    }
  }

  private async _remove(source: ISourceInfo): Promise<void> {
    const answer = await showDialog({
      title: 'Stop watching this folder?',
      body: `${source.path}\n\nIts runs leave the list (the folder itself is not touched).`,
      buttons: [
        Dialog.cancelButton(),
        Dialog.warnButton({ label: 'Stop watching' })
      ]
    });
    if (!answer.button.accept) {
      return;
    }
    this._showError('');
    try {
      this._render(await this._model.api.removeSource(source.path));
      await this._model.refresh();
    } catch (error) {
      this._showError(error instanceof ApiError ? error.message : `${error}`);
    }
  }

  private _render(answer: ISources): void {
    // An older server lists paths only.
    const sources: ISourceInfo[] =
      answer.details ??
      answer.sources.map(path => ({
        path,
        kind: 'dir',
        exists: true,
        label: path
      }));
    this._sources = sources;
    const noun = sources.length === 1 ? 'source' : 'sources';
    this._title.textContent = `Watching ${sources.length} ${noun}`;
    this._list.replaceChildren(...sources.map(source => this._item(source)));
  }

  private _item(source: ISourceInfo): HTMLElement {
    const item = el('li', 'guildimg-source');
    item.dataset.path = source.path;
    item.dataset.exists = String(source.exists);
    const label = el('span', 'guildimg-source-label', source.label);
    label.title = source.path;
    item.append(label);
    if (source.kind === 'guild') {
      item.append(el('span', 'guildimg-source-kind', 'Guild home'));
    }
    if (!source.exists) {
      item.append(el('span', 'guildimg-source-missing', 'not there yet'));
    }
    const remove = button(
      'guildimg-source-remove',
      '✕',
      `Stop watching ${source.path}`
    );
    remove.setAttribute('aria-label', `Stop watching ${source.label}`);
    remove.addEventListener('click', () => void this._remove(source));
    item.append(remove);
    return item;
  }

  private _showError(text: string): void {
    this._error.textContent = text;
    this._error.hidden = !text;
  }

  private _sources: ISourceInfo[] = [];
  private _title = el('span', 'guildimg-sources-title', 'Watched sources');
  private _list = el('ul', 'guildimg-sources-list');
  private _input = document.createElement('input');
  private _add = button('guildimg-sources-add-button', 'Add', 'Watch it');
  private _error = el('div', 'guildimg-sources-error');
}
