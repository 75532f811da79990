/**
 * The `ws` package (a dependency of the LiveKit plugins, hoisted to the root
 * node_modules) with the few types the fakes use: the project has no @types/ws,
 * so it is loaded through createRequire and typed here instead of declaring an
 * ambient module for the whole project.
 */
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';

export interface WsSocket {
  readonly readyState: number;
  send(data: string | Buffer | Uint8Array, cb?: (err?: Error) => void): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): this;
  on(event: 'close', listener: (code: number, reason: Buffer) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}

export interface WsServer {
  readonly clients: Set<WsSocket>;
  handleUpgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    cb: (ws: WsSocket, req: IncomingMessage) => void,
  ): void;
  on(event: 'headers', listener: (headers: string[], req: IncomingMessage) => void): this;
  close(cb?: (err?: Error) => void): void;
}

interface WsModule {
  WebSocketServer: new (opts: { noServer: true; perMessageDeflate?: boolean; clientTracking?: boolean }) => WsServer;
}

const require = createRequire(import.meta.url);
const ws = require('ws') as WsModule;

export const WS_OPEN = 1;

export function createWsServer(): WsServer {
  return new ws.WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: true });
}

/** Answers an HTTP upgrade request with a plain HTTP error instead of switching protocols. */
export function rejectUpgrade(socket: Duplex, status: number, body: unknown, statusText = 'Error'): void {
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${statusText}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}
