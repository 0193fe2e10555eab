/**
 * The client of the server extension's REST API (`<base_url>guildimg/api/`).
 *
 * Every request goes through `ServerConnection.makeRequest`, so the token, the
 * XSRF cookie and JupyterHub's settings are handled the way JupyterLab does it.
 * Images are fetched the same way and shown as object URLs: a plain `<img src>`
 * would depend on a login cookie the page may not have.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/**
 * The REST contract, mirrored from `jupyter_guildimg/rest/` (where it is
 * defined and documented): the routes, and every JSON body as an interface
 * `IX` for the TypedDict `X` there, field for field.
 * `tests/server/test_contract.py` fails when the two differ.
 */
export const API_PREFIX = 'guildimg/api';
export const TENSORBOARD_PREFIX = 'guildimg/tensorboard';

/** Routes relative to API_PREFIX; `{key}` is a run key, `{path}` an image path. */
export const ROUTES = {
  STATUS: 'status',
  RUNS: 'runs',
  RUN: 'runs/{key}',
  RUN_IMAGES: 'runs/{key}/images',
  RUN_IMAGE: 'runs/{key}/images/{path}',
  REFRESH: 'refresh',
  TENSORBOARD: 'tensorboard',
  SOURCES: 'sources',
  CHANGES: 'changes',
  SELECTION: 'selection'
} as const;

/** Query parameters and body keys. */
export const PARAMS = {
  IMAGE: 'image',
  Q: 'q',
  REV: 'rev',
  THUMB: 'thumb',
  SINCE: 'since',
  TIMEOUT: 'timeout',
  PATH: 'path',
  RESTART: 'restart'
} as const;

/** A route template with its run key (one URL segment) and image path filled in. */
export function route(
  template: string,
  values: { key?: string; path?: string } = {}
): string {
  return template
    .replace('{key}', encodeURIComponent(values.key ?? ''))
    .replace(
      '{path}',
      (values.path ?? '').split('/').map(encodeURIComponent).join('/')
    );
}

export type RunKind = 'guild' | 'dir';

export type TensorBoardStatus = 'stopped' | 'starting' | 'ready' | 'failed';

/** How TensorBoard's runs are chosen: the server's policy, a list, a filter. */
export type SelectionMode = 'auto' | 'runs' | 'filter';

/** A run as `GET runs` lists it. */
export interface IRun {
  id: string;
  run_id: string;
  short_id: string;
  name: string;
  operation: string;
  label: string;
  status: string;
  started: number | null;
  stopped: number | null;
  kind: RunKind;
  source: string;
  image_count: number;
  in_tensorboard: boolean;
}

/** `GET runs`. */
export interface IRunsList {
  runs: IRun[];
}

/** One stored revision of an image, newest first in `IImage.revisions`. */
export interface IRevision {
  revision: number;
  time: number;
  width: number;
  height: number;
  size: number;
}

/** A captured image; `dropped` revisions were removed under the server's cap. */
export interface IImage {
  path: string;
  dropped: number;
  revisions: IRevision[];
}

/** `GET runs/<key>/images`. */
export interface IRunImages {
  run: IRun;
  images: IImage[];
}

/** An image a monitor pass summarized. */
export interface IWritten {
  run: string;
  path: string;
}

/** Something a monitor pass could not do. */
export interface IProblem {
  run: string;
  path: string;
  message: string;
}

/** A problem in `GET status`, with its time. */
export interface IMonitorProblem {
  time: number;
  run: string;
  path: string;
  message: string;
}

/** `POST refresh`: what the pass did. */
export interface IRefreshReport {
  duration: number;
  runs: number;
  images: number;
  written: IWritten[];
  runs_added: string[];
  runs_removed: string[];
  runs_changed: string[];
  problems: IProblem[];
}

/** The event files TensorBoard would hold open for the runs it shows, and how
 * many it may open. */
export interface ITensorBoardFiles {
  needed: number;
  limit: number;
}

/** TensorBoard's state; `summary` is the sentence to show for it, `warnings`
 * plain sentences to show above its page. */
export interface ITensorBoardState {
  status: TensorBoardStatus;
  summary: string;
  reason: string;
  port: number | null;
  pid: number | null;
  restarts: number;
  stderr_tail: string[];
  started: number | null;
  files: ITensorBoardFiles;
  warnings: string[];
}

/** `GET`/`PUT selection`: the runs TensorBoard shows (`runs`, keys newest
 * first: `shown` of the `total` runs), and the rule that chose them. */
export interface ISelection {
  mode: SelectionMode;
  runs: string[];
  filter: string;
  shown: number;
  total: number;
  limit: number;
  summary: string;
  rule: string;
}

/** `PUT selection`'s body: back to the policy, these runs, or a filter. */
export interface ISelectionChange {
  mode: SelectionMode;
  runs?: string[];
  filter?: string;
}

/** A configured source that is not watched, and why. */
export interface IRefusedSource {
  path: string;
  message: string;
}

/** How one watched root is followed: file-system events, or polling and why. */
export interface ISourceWatch {
  path: string;
  mode: 'events' | 'polling';
  reason: string;
}

/** How the monitor learns of changes (`null` when it only polls). */
export interface IWatchStatus {
  sources: ISourceWatch[];
  watches: number;
  reconcile_interval: number;
}

/** How far the monitor's index is: of the `found` runs its full pass listed,
 * `indexed` are synced (and listed) so far; `done` once none is being indexed. */
export interface IIndexProgress {
  indexed: number;
  found: number;
  done: boolean;
}

/** The monitor in `GET status`. */
export interface IMonitorStatus {
  sources: string[];
  running: boolean;
  logdir: string;
  interval: number;
  passes: number;
  generation: number;
  last_pass: number | null;
  last_pass_duration: number | null;
  runs: number;
  images: number;
  pass_started: number | null;
  pass_running_for: number | null;
  stalled: boolean;
  logdir_error: string | null;
  problems: IMonitorProblem[];
  watch: IWatchStatus | null;
  index: IIndexProgress;
  poll_interval: number | null;
  refused_sources: IRefusedSource[];
  error: string | null;
}

/** `GET status`. */
export interface IStatus {
  monitor: IMonitorStatus;
  tensorboard: ITensorBoardState;
}

/** One watched source: its kind, whether it exists now (a default `runs` is
 * watched until it appears), and how to show it (`label`: relative to the
 * server's root directory when inside it, else with the user's home as `~`). */
export interface ISourceInfo {
  path: string;
  kind: RunKind;
  exists: boolean;
  label: string;
}

/** `GET`/`POST`/`DELETE sources`: the watched paths and `details` of each. */
export interface ISources {
  sources: string[];
  details: ISourceInfo[];
}

/** `GET changes`. */
export interface IChanges {
  generation: number;
}

/** Every error's body. */
export interface IError {
  message: string;
  reason?: string | null;
}

/** An API error: the HTTP status and the server's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

export class GuildImgApi {
  constructor(
    readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  /** The proxied TensorBoard page, with the token when the page has one (the
   * iframe's requests carry cookies, not headers; the token logs it in). */
  get tensorBoardUrl(): string {
    const url = URLExt.join(this.settings.baseUrl, `${TENSORBOARD_PREFIX}/`);
    const token = this.settings.token;
    return token ? `${url}?token=${encodeURIComponent(token)}` : url;
  }

  status(): Promise<IStatus> {
    return this.json<IStatus>(ROUTES.STATUS);
  }

  /** The runs, newest first; with `image`, only those that captured that image
   * path; with `q`, only those the server's filter keeps (every word of `q`
   * in one of the run's fields, ignoring case). */
  runs(image?: string, q?: string): Promise<IRun[]> {
    const query: Record<string, string> = {};
    if (image !== undefined) {
      query[PARAMS.IMAGE] = image;
    }
    if (q) {
      query[PARAMS.Q] = q;
    }
    return this.json<IRunsList>(
      ROUTES.RUNS + URLExt.objectToQueryString(query)
    ).then(body => body.runs);
  }

  /** The run `key` names: its id, or a unique prefix of its run id. */
  run(key: string): Promise<IRun> {
    return this.json<IRun>(route(ROUTES.RUN, { key }));
  }

  /** The watched run sources (paths). */
  sources(): Promise<string[]> {
    return this.json<ISources>(ROUTES.SOURCES).then(body => body.sources);
  }

  /** The watched run sources, with their details. */
  sourceList(): Promise<ISources> {
    return this.json<ISources>(ROUTES.SOURCES);
  }

  /** Watch one more source (`guild:`/`dir:` prefixes allowed; a relative path is
   * resolved against the server's root directory). Rejects with an ApiError (400)
   * whose message names the path when it is not a directory or overlaps the
   * log dir. */
  addSource(path: string): Promise<ISources> {
    return this.json<ISources>(ROUTES.SOURCES, {
      method: 'POST',
      body: JSON.stringify({ [PARAMS.PATH]: path })
    });
  }

  /** Stop watching a source (its `path` as listed); its runs leave the list at
   * the next monitor pass. Rejects with an ApiError (404) when it is not watched. */
  removeSource(path: string): Promise<ISources> {
    return this.json<ISources>(
      ROUTES.SOURCES + URLExt.objectToQueryString({ [PARAMS.PATH]: path }),
      { method: 'DELETE' }
    );
  }

  images(runId: string): Promise<IRunImages> {
    return this.json<IRunImages>(route(ROUTES.RUN_IMAGES, { key: runId }));
  }

  /** The bytes of one revision (the newest when `revision` is undefined), or a
   * thumbnail at most `thumb` pixels wide, as a Blob. */
  async image(
    runId: string,
    path: string,
    options: { revision?: number; thumb?: number } = {}
  ): Promise<Blob> {
    const query: Record<string, string> = {};
    if (options.revision !== undefined) {
      query[PARAMS.REV] = String(options.revision);
    }
    if (options.thumb !== undefined) {
      query[PARAMS.THUMB] = String(options.thumb);
    }
    const response = await this.request(
      route(ROUTES.RUN_IMAGE, { key: runId, path }) +
        URLExt.objectToQueryString(query)
    );
    return response.blob();
  }

  refresh(): Promise<IRefreshReport> {
    return this.json<IRefreshReport>(ROUTES.REFRESH, { method: 'POST' });
  }

  tensorBoard(): Promise<ITensorBoardState> {
    return this.json<ITensorBoardState>(ROUTES.TENSORBOARD);
  }

  /** Start TensorBoard unless it is ready or starting (the server decides, and
   * waits for a start in progress); resolves once it is ready or failed. */
  startTensorBoard(): Promise<ITensorBoardState> {
    return this.json<ITensorBoardState>(ROUTES.TENSORBOARD, { method: 'POST' });
  }

  /** Stop TensorBoard if it runs and start it again; resolves once it is ready
   * or failed. */
  restartTensorBoard(): Promise<ITensorBoardState> {
    return this.json<ITensorBoardState>(ROUTES.TENSORBOARD, {
      method: 'POST',
      body: JSON.stringify({ [PARAMS.RESTART]: true })
    });
  }

  /** The runs TensorBoard shows, and why. */
  getSelection(): Promise<ISelection> {
    return this.json<ISelection>(ROUTES.SELECTION);
  }

  /** Change the runs TensorBoard shows; resolves with the new selection. */
  putSelection(body: ISelectionChange): Promise<ISelection> {
    return this.json<ISelection>(ROUTES.SELECTION, {
      method: 'PUT',
      body: JSON.stringify(body)
    });
  }

  /** Resolves with the change generation once it passes `since`, or after
   * `timeout` seconds with it unchanged. */
  changes(
    since: number,
    timeout: number,
    signal?: AbortSignal
  ): Promise<number> {
    const query = URLExt.objectToQueryString({
      [PARAMS.SINCE]: String(since),
      [PARAMS.TIMEOUT]: String(timeout)
    });
    return this.json<IChanges>(ROUTES.CHANGES + query, {
      signal
    }).then(body => body.generation);
  }

  private async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await this.request(path, init);
    return (await response.json()) as T;
  }

  private async request(
    path: string,
    init: RequestInit = {}
  ): Promise<Response> {
    const url = URLExt.join(this.settings.baseUrl, API_PREFIX, path);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (error) {
      if ((error as Error).name === 'AbortError') {
        throw error;
      }
      throw new ApiError(0, `The Jupyter server did not answer: ${error}`);
    }
    if (!response.ok) {
      let message = '';
      try {
        message = ((await response.json()) as IError).message ?? '';
      } catch {
        // Not JSON: not one of our handlers (a proxy's error page, say).
      }
      if (!message && response.status === 404) {
        // Every route of ours answers JSON, even its 404s: nothing of ours is here.
        message =
          'The jupyter_guildimg server extension does not answer on this ' +
          'server. Is it installed in the environment that runs Jupyter, and ' +
          'enabled? (jupyter server extension list)';
      }
      throw new ApiError(response.status, message || response.statusText);
    }
    return response;
  }
}
