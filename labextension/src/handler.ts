import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IApiError } from './tokens';

/** An answer of the server extension that was not 2xx: its JSON error, and the whole body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: IApiError
  ) {
    super(body.message || body.error || `HTTP ${status}`);
  }
}

/**
 * Call `/mlops-nb/api/<endPoint>` with the server's token and XSRF handling; the JSON answer,
 * or an ApiError carrying the server's {error, message}.
 */
export async function requestAPI<T>(endPoint = '', init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'mlops-nb', 'api', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: 'bad_response', message: text.slice(0, 300) };
    }
  }
  if (!response.ok) {
    const body: IApiError =
      data && typeof data === 'object' && ('message' in data || 'error' in data)
        ? data
        : { error: `http_${response.status}`, message: response.statusText || `HTTP ${response.status}` };
    if (!body.message) {
      body.message = body.error;
    }
    throw new ApiError(response.status, body);
  }
  return data as T;
}

/** A query string from the defined values only. */
export function query(values: Record<string, string | number | null | undefined>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    if (value !== null && value !== undefined && value !== '') {
      parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`);
    }
  }
  return parts.length ? `?${parts.join('&')}` : '';
}
