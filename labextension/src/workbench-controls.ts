/**
 * The workbench's toolbar: the image path, runs to add, the alignment and its
 * one slider, the mode, the zoom, the link and the export.
 */
import { Clipboard } from '@jupyterlab/apputils';

import { button, el } from './dom';
import { runName, when } from './workbench-cells';
import { Alignment, MODES, WorkbenchMode } from './workbench-state';
import type { Workbench } from './workbench';

const MODE_NAMES: Record<WorkbenchMode, [string, string]> = {
  grid: ['Side by side', 'g'],
  swipe: ['Swipe', 's'],
  blink: ['Blink', 'b'],
  diff: ['Difference', 'd']
};

export class Controls {
  readonly node = el('div', 'guildimg-wb-toolbar');

  constructor(private readonly _bench: Workbench) {
    const rows = [el('div', 'guildimg-wb-row'), el('div', 'guildimg-wb-row')];
    this._path.className = 'guildimg-wb-path jp-mod-styled';
    this._path.setAttribute('aria-label', 'Image');
    this._path.addEventListener('change', () =>
      _bench.change({ path: this._path.value })
    );
    this._add.className = 'guildimg-wb-add jp-mod-styled';
    this._add.append(option('', 'a run…'));
    this._add.addEventListener('focus', () => void this._loadCandidates());
    this._add.addEventListener('change', () => {
      const key = this._add.value;
      this._add.value = '';
      if (key) {
        _bench.change({ runs: [..._bench.state.runs, key] });
      }
    });
    const add = el('label', 'guildimg-wb-label', 'Compare with ');
    add.append(this._add);

    this._align.className = 'guildimg-wb-align jp-mod-styled';
    this._align.setAttribute('aria-label', 'Align the runs');
    for (const [value, text] of [
      ['revision', 'by revision'],
      ['time', 'by time']
    ]) {
      this._align.append(option(value, text));
    }
    this._align.addEventListener('change', () =>
      _bench.change({ align: this._align.value as Alignment, position: -1 })
    );
    this._slider.type = 'range';
    this._slider.className = 'guildimg-wb-slider';
    this._slider.min = '0';
    this._slider.step = '1';
    this._slider.setAttribute('aria-label', 'Revision of every run');
    this._slider.addEventListener('input', () =>
      _bench.moveTo(Number(this._slider.value))
    );
    rows[0].append(this._path, add, this._align, this._slider, this._position);

    const modes = el('div', 'guildimg-wb-modes');
    modes.setAttribute('role', 'group');
    modes.setAttribute('aria-label', 'View');
    for (const mode of MODES) {
      const [text, key] = MODE_NAMES[mode];
      const node = button('guildimg-wb-mode', text, `${text} (${key})`);
      node.dataset.mode = mode;
      node.addEventListener('click', () => _bench.setMode(mode));
      modes.append(node);
    }
    this._reference.className = 'guildimg-wb-reference jp-mod-styled';
    this._reference.addEventListener('change', () =>
      _bench.change({ reference: Number(this._reference.value) })
    );
    this._referenceLabel.append(this._reference);
    const zoom = el('div', 'guildimg-wb-zoombar');
    const actions: [string, string, string, () => void][] = [
      ['guildimg-wb-fit', 'Fit', 'Fit the images (f)', () => _bench.fit()],
      [
        'guildimg-wb-actual',
        '1:1',
        'Actual size: one image pixel per screen pixel (1)',
        () => _bench.actualSize()
      ],
      ['guildimg-wb-out', '−', 'Zoom out (-)', () => _bench.zoomBy(0.8)],
      ['guildimg-wb-in', '+', 'Zoom in (+)', () => _bench.zoomBy(1.25)]
    ];
    for (const [name, text, title, act] of actions) {
      const node = button(name, text, title);
      node.addEventListener('click', act);
      zoom.append(node);
    }
    zoom.append(this._zoom);
    const copy = button(
      'guildimg-wb-copy',
      'Copy link',
      'Copy a link that opens this view in JupyterLab on this server'
    );
    copy.addEventListener('click', () => {
      const link = _bench.link;
      copy.dataset.link = link;
      Clipboard.copyToSystem(link);
      copy.textContent = 'Link copied';
      setTimeout(() => (copy.textContent = 'Copy link'), 2000);
    });
    const save = button(
      'guildimg-wb-export',
      'Save as PNG',
      'Download the comparison as a PNG, each image labelled'
    );
    save.addEventListener('click', () => void _bench.exportPng());
    rows[1].append(modes, this._referenceLabel, zoom, copy, save);
    this.node.append(...rows);
  }

  /** Show the workbench's state. */
  update(): void {
    const bench = this._bench;
    const state = bench.state;
    const paths = bench.paths();
    if (paths.join('\n') !== this._paths) {
      this._paths = paths.join('\n');
      this._path.replaceChildren(...paths.map(p => option(p, p)));
    }
    this._path.value = state.path;
    this._align.value = state.align;
    const list = bench.stops();
    const at = bench.stopIndex();
    this._slider.max = String(Math.max(0, list.length - 1));
    this._slider.value = String(at);
    this._slider.disabled = list.length < 2;
    this._position.textContent =
      list.length === 0
        ? ''
        : state.align === 'revision'
          ? `revision ${at + 1} of ${list.length}`
          : new Date(list[at] * 1000).toLocaleString() +
            ` (${at + 1} of ${list.length})`;
    this._position.dataset.stop = String(at);
    this.node
      .querySelectorAll<HTMLButtonElement>('.guildimg-wb-mode')
      .forEach(node =>
        node.setAttribute(
          'aria-pressed',
          String(node.dataset.mode === state.mode)
        )
      );
    // With one run, the pixel views compare two of its revisions.
    const single = bench.cells.length === 1;
    this._referenceLabel.hidden = !single || state.mode === 'grid';
    if (single) {
      const revisions = bench.cells[0].revisions(state.path);
      this._reference.replaceChildren(
        ...revisions.map((r, i) =>
          option(String(i), `revision ${i + 1} · ${when(r)}`)
        )
      );
      this._reference.value = String(
        Math.min(state.reference, revisions.length - 1)
      );
    }
    this._zoom.textContent =
      state.scale > 0 ? `${Math.round(state.scale * 100)} %` : 'fit';
    this._zoom.dataset.scale = String(state.scale);
  }

  /** The runs that captured the path and are not shown yet. */
  private async _loadCandidates(): Promise<void> {
    const state = this._bench.state;
    let runs;
    try {
      runs = await this._bench.model.api.runs(state.path);
    } catch {
      return; // the menu keeps its entries; the cells report errors
    }
    const others = runs.filter(run => !state.runs.includes(run.id));
    this._add.replaceChildren(
      option('', others.length ? 'a run…' : 'no other run has this image'),
      ...others.map(run => option(run.id, runName(run, run.id)))
    );
  }

  private _path = document.createElement('select');
  private _paths = '';
  private _add = document.createElement('select');
  private _align = document.createElement('select');
  private _slider = document.createElement('input');
  private _position = el('span', 'guildimg-wb-position');
  private _reference = document.createElement('select');
  private _referenceLabel = el('label', 'guildimg-wb-label', 'B: ');
  private _zoom = el('span', 'guildimg-wb-zoom');
}

function option(value: string, text: string): HTMLOptionElement {
  const node = document.createElement('option');
  node.value = value;
  node.textContent = text;
  return node;
}
