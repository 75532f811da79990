import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { closeServer, listenLocal, readBody } from './fakes/http.js';

export interface ProxiedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The upstream's status, once it answered. */
  status?: number;
}

/** One request held by the proxy. */
export interface Held {
  /** Resolves when a matching request is held: before it was forwarded, or with the upstream's answer kept back. */
  readonly arrived: Promise<ProxiedRequest>;
  /**
   * Lets it go: forwards it (held before forwarding) or passes the answer on
   * (held after). Resolves with the upstream's status once the upstream has
   * answered, whether or not the client is still there to hear it.
   */
  release(): Promise<number>;
}

type Armed = { match: (path: string) => boolean; phase: 'request' | 'answer'; arrive: (r: ProxiedRequest) => void; gate: Promise<void>; answered: Promise<number>; setAnswered: (s: number) => void };

/**
 * An HTTP proxy on loopback in front of a real server (LiveKit's HTTP API, the
 * API's webhook endpoint), recording every request it passes on. A test can
 * hold the next request to a path, before it reaches the upstream or with
 * the upstream's answer kept back, to make a client's call be in flight at
 * the moment it chooses (and then kill the client).
 */
export class HoldingProxy {
  readonly requests: ProxiedRequest[] = [];
  private armed: Armed[] = [];

  private constructor(
    private readonly upstream: URL,
    private readonly server: Awaited<ReturnType<typeof listenLocal>>['server'],
    readonly port: number,
  ) {}

  static async start(upstream: string): Promise<HoldingProxy> {
    let self: HoldingProxy | undefined;
    const { server, port } = await listenLocal((req, res) => void self!.handle(req, res));
    self = new HoldingProxy(new URL(upstream.replace(/^ws/, 'http')), server, port);
    return self;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Holds the next request whose path includes `path`. */
  hold(path: string, phase: 'request' | 'answer'): Held {
    let arrive!: (r: ProxiedRequest) => void;
    let open!: () => void;
    let setAnswered!: (s: number) => void;
    const arrived = new Promise<ProxiedRequest>((r) => (arrive = r));
    const gate = new Promise<void>((r) => (open = r));
    const answered = new Promise<number>((r) => (setAnswered = r));
    this.armed.push({ match: (p) => p.includes(path), phase, arrive, gate, answered, setAnswered });
    return {
      arrived,
      release: () => {
        open();
        return answered;
      },
    };
  }

  /** Sends a request exactly as recorded (a replay), to the upstream; returns its status and body. */
  async replay(r: ProxiedRequest, body: Buffer | string = r.body): Promise<{ status: number; body: string }> {
    const out = await this.forward({ ...r, body: Buffer.from(body) });
    return { status: out.status, body: out.body.toString('utf8') };
  }

  private async handle(req: IncomingMessage, res: ServerResponse) {
    res.on('error', () => undefined);
    const r: ProxiedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body: await readBody(req) };
    this.requests.push(r);
    const i = this.armed.findIndex((a) => a.match(r.path));
    const held = i >= 0 ? this.armed.splice(i, 1)[0] : undefined;
    try {
      if (held?.phase === 'request') {
        held.arrive(r);
        await held.gate;
      }
      const out = await this.forward(r);
      r.status = out.status;
      held?.setAnswered(out.status);
      if (held?.phase === 'answer') {
        held.arrive(r);
        await held.gate;
      }
      // The client may be gone (killed while its call was held): the answer then goes nowhere.
      if (res.destroyed) return;
      res.writeHead(out.status, out.headers);
      res.end(out.body);
    } catch {
      held?.setAnswered(0);
      if (!res.destroyed) res.destroy();
    }
  }

  private forward(r: ProxiedRequest): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const headers = { ...r.headers, host: this.upstream.host, 'content-length': String(r.body.length) };
      delete headers.connection;
      const up = httpRequest({ host: this.upstream.hostname, port: this.upstream.port, method: r.method, path: r.path, headers }, (answer) => {
        readBody(answer).then((body) => {
          const h = { ...answer.headers };
          delete h['transfer-encoding'];
          delete h.connection;
          resolve({ status: answer.statusCode ?? 0, headers: { ...h, 'content-length': String(body.length) }, body });
        }, reject);
      });
      up.on('error', reject);
      up.end(r.body);
    });
  }

  async close(): Promise<void> {
    await closeServer(this.server);
  }
}
