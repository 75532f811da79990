/** The API as the CLI sees it: JSON in and out, problem+json turned into one-line errors. */
export const DEV_URL = 'http://127.0.0.1:8080';
export const DEV_KEY = 'dev-api-key';

export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body?: unknown,
  ) {
    super(message);
  }
}

export interface Connection {
  url: string;
  key: string;
}

/** "404 not-found: agent "x" is not registered", with the first field errors of a validation problem. */
function problemLine(status: number, body: unknown, fallback: string): string {
  if (body && typeof body === 'object') {
    const p = body as { title?: string; detail?: string; type?: string; errors?: { field: string; message: string }[] };
    const fields = p.errors?.length ? ` (${p.errors.slice(0, 3).map((e) => `${e.field || 'body'}: ${e.message}`).join('; ')})` : '';
    return `${status} ${p.title ?? ''}: ${p.detail ?? fallback}${fields}`.replace(' :', ':');
  }
  return `${status}: ${fallback}`;
}

export class Client {
  constructor(readonly c: Connection) {}

  private headers(json: boolean): Record<string, string> {
    return { authorization: `Bearer ${this.c.key}`, ...(json ? { 'content-type': 'application/json' } : {}) };
  }

  async call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.c.url), { method, headers: this.headers(body !== undefined), body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new ApiProblem(0, `cannot reach ${this.c.url}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    if (!res.ok) throw new ApiProblem(res.status, problemLine(res.status, parsed, res.statusText), parsed);
    return parsed as T;
  }

  /** Server-sent events of a path: yields each event's name and parsed data until the server closes. */
  async *events(path: string): AsyncGenerator<{ event: string; data: any }> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.c.url), { headers: { ...this.headers(false), accept: 'text/event-stream' } });
    } catch (err) {
      throw new ApiProblem(0, `cannot reach ${this.c.url}: ${(err as Error).message}`);
    }
    if (!res.ok || !res.body) {
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      throw new ApiProblem(res.status, problemLine(res.status, parsed, res.statusText), parsed);
    }
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
        }
        if (data.length) yield { event, data: JSON.parse(data.join('\n')) };
      }
    }
  }
}
