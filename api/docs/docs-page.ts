import { createRequire } from 'node:module';
import express, { Router } from 'express';

const require = createRequire(import.meta.url);
/** swagger-ui-dist's folder of built assets, served as they are: nothing is fetched from a CDN. */
const ASSETS = (require('swagger-ui-dist') as { getAbsoluteFSPath(): string }).getAbsoluteFSPath();

// Only external files: the API's Content-Security-Policy (helmet: script-src 'self') forbids inline scripts.
const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Agent Runtime API</title>
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

// validatorUrl null: the default sends the document to a public validator for a badge.
const INIT = `window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: true,
  tryItOutEnabled: false,
  displayRequestDuration: true,
});
`;

/**
 * GET /docs: Swagger UI over /openapi.json, no key needed to read it. "Try
 * it out" sends the key pasted under Authorize (the document's bearer scheme).
 */
export function docsPage(): Router {
  const r = Router();
  r.get('/docs', (_req, res) => {
    res.type('html').send(PAGE);
  });
  r.get('/docs/init.js', (_req, res) => {
    res.type('js').send(INIT);
  });
  // The package's own index.html points at a sample API: only the assets are served.
  r.use('/docs/assets', express.static(ASSETS, { index: false, maxAge: '1h' }));
  return r;
}
