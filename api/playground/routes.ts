import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { Router } from 'express';
import helmet from 'helmet';

const require = createRequire(import.meta.url);
/** The page's own files, beside this module (copied next to the compiled one in the image). */
const STATIC = path.join(path.dirname(fileURLToPath(import.meta.url)), 'static');
/** livekit-client's self-contained ES module build, from node_modules: nothing is fetched from a CDN. */
const LIVEKIT_CLIENT = path.join(path.dirname(require.resolve('livekit-client')), 'livekit-client.esm.mjs');

export const PLAYGROUND_PATH = '/playground';

/** The LiveKit origins a browser talks to: the signalling WebSocket and its HTTP twin (livekit-client checks /rtc/validate over HTTP when a connect fails). */
export function livekitOrigins(livekitUrl: string): string[] {
  const u = new URL(livekitUrl);
  const secure = u.protocol === 'wss:' || u.protocol === 'https:';
  return [`${secure ? 'wss' : 'ws'}://${u.host}`, `${secure ? 'https' : 'http'}://${u.host}`];
}

/**
 * GET /playground: a page to talk to a registered agent from the browser
 * (api/playground/static). The page holds no key: the user types one, the
 * tab keeps it (sessionStorage) and sends it to /api as a bearer key. Its
 * Content-Security-Policy allows this server and the LiveKit URL users are
 * given, nothing else.
 */
export function playgroundRoutes(livekitUrl: string): Router {
  const r = Router();
  r.use(
    PLAYGROUND_PATH,
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          'default-src': ["'self'"],
          'script-src': ["'self'"],
          'style-src': ["'self'"],
          'img-src': ["'self'", 'data:'],
          'media-src': ["'self'", 'blob:', 'mediastream:'],
          'connect-src': ["'self'", ...livekitOrigins(livekitUrl)],
          'object-src': ["'none'"],
          'base-uri': ["'none'"],
          'form-action': ["'none'"],
          'frame-ancestors': ["'none'"],
        },
      },
      // The microphone is asked for by this page itself; no other origin may.
      referrerPolicy: { policy: 'no-referrer' },
    }),
    (_req, res, next) => {
      res.setHeader('Permissions-Policy', 'microphone=(self), camera=(), geolocation=()');
      next();
    },
  );
  // /playground and /playground/ are the same page (its links are absolute).
  r.get([PLAYGROUND_PATH, `${PLAYGROUND_PATH}/`], (_req, res) => {
    res.sendFile(path.join(STATIC, 'index.html'), { maxAge: 0 });
  });
  r.get(`${PLAYGROUND_PATH}/vendor/livekit-client.mjs`, (_req, res) => {
    res.type('js').sendFile(LIVEKIT_CLIENT, { maxAge: '1h' });
  });
  // Its source map, under the name the module's last line gives it (browsers' developer tools ask for it).
  r.get(`${PLAYGROUND_PATH}/vendor/livekit-client.esm.mjs.map`, (_req, res) => {
    res.type('json').sendFile(`${LIVEKIT_CLIENT}.map`, { maxAge: '1h' });
  });
  r.use(PLAYGROUND_PATH, express.static(STATIC, { index: false, maxAge: 0, redirect: false }));
  return r;
}
