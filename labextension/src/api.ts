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
  kind: string;
  source: string;
  image_count: number;
}

/** One stored revision of an image, newest first in `IImage.revisions`. */
export interface IRevision {
  revision: number;
  time: number;
  width: number;
  height: number;
  size: number;
}

export interface IImage {
  path: string;
  revisions: IRevision[];
}

export interface IRunImages {
  run: IRun;
  images: IImage[];
}

export type TensorBoardStatus = 'stopped' | 'starting' | 'ready' | 'failed';

export interface ITensorBoardState {
  status: TensorBoardStatus;
  reason: string;
  port: number | null;
  pid: number | null;
  restarts: number;
  stderr_tail: string[];
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
    const url = URLExt.join(this.settings.baseUrl, 'guildimg', 'tensorboard/');
    const token = this.settings.token;
    return token ? `${url}?token=${encodeURIComponent(token)}` : url;
  }

  /** The runs, newest first; with `image`, only those that captured that image path. */
  runs(image?: string): Promise<IRun[]> {
    const query =
      image === undefined ? '' : URLExt.objectToQueryString({ image });
    return this.json<{ runs: IRun[] }>(`runs${query}`).then(body => body.runs);
  }

  /** The watched run sources (paths). */
  sources(): Promise<string[]> {
    return this.json<{ sources: string[] }>('sources').then(
      body => body.sources
    );
  }

  images(runId: string): Promise<IRunImages> {
    return this.json<IRunImages>(`runs/${encodeURIComponent(runId)}/images`);
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
      query.rev = String(options.revision);
    }
    if (options.thumb !== undefined) {
      query.thumb = String(options.thumb);
    }
    const imagePath = path.split('/').map(encodeURIComponent).join('/');
    const response = await this.request(
      `runs/${encodeURIComponent(runId)}/images/${imagePath}` +
        URLExt.objectToQueryString(query)
    );
    return response.blob();
  }

  refresh(): Promise<unknown> {
    return this.json('refresh', { method: 'POST' });
  }

  tensorBoard(): Promise<ITensorBoardState> {
    return this.json<ITensorBoardState>('tensorboard');
  }

  /** Start TensorBoard (a restart if it runs); resolves once it is ready or failed. */
  startTensorBoard(): Promise<ITensorBoardState> {
    return this.json<ITensorBoardState>('tensorboard', { method: 'POST' });
  }

  /** Resolves with the change generation once it passes `since`, or after
   * `timeout` seconds with it unchanged. */
  changes(
    since: number,
    timeout: number,
    signal?: AbortSignal
  ): Promise<number> {
    const query = URLExt.objectToQueryString({
      since: String(since),
      timeout: String(timeout)
    });
    return this.json<{ generation: number }>(`changes${query}`, {
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
    const url = URLExt.join(this.settings.baseUrl, 'guildimg', 'api', path);
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
        message = (await response.json()).message ?? '';
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
