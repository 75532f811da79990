import path from 'node:path';
import { expect } from 'chai';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT } from '../../tools/lib/paths.js';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';

const ADMIN_KEY = 'test-admin-key-0123456789';
const IMAGES = path.join(ROOT, 'docs', 'images');

/** The pages in headless Chromium, as an operator sees them; screenshots for the README. */
describe('the docs page and the queue board in a browser', function () {
  this.timeout(90_000);
  let api: TestApi;
  let browser: Browser;

  before(async () => {
    api = await startTestApi({ ADMIN_API_KEYS: ADMIN_KEY });
    // A fresh profile: playwright gives every launch a new temporary user-data-dir (and removes it).
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    await browser?.close();
    await api.stop();
  });

  /** Every request the page makes leaves nowhere but this API; CSP violations are recorded. */
  function watch(page: Page) {
    const offsite: string[] = [];
    const problems: string[] = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.protocol !== 'data:' && u.origin !== new URL(api.url).origin) offsite.push(r.url());
    });
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    return { offsite, problems };
  }

  it('GET /docs renders every operation of /openapi.json, and "try it" sends the pasted key', async () => {
    await api.call('POST', '/api/agents/register', agentBody('docs'));
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const seen = watch(page);
    await page.goto(`${api.url}/docs`);
    await page.locator('.opblock').first().waitFor();
    const doc = (await (await fetch(`${api.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const expected = Object.values(doc.paths).flatMap((p) => Object.keys(p).filter((m) => m !== 'parameters')).length;
    expect(await page.locator('.opblock').count()).to.equal(expected);
    expect(await page.locator('.opblock-summary-path', { hasText: '/api/agents/register' }).count()).to.equal(1);
    await page.screenshot({ path: path.join(IMAGES, 'docs.png') });

    // Authorize with the key, then try GET /api/agents/{id}.
    await page.locator('button.authorize').first().click();
    await page.locator('.auth-container input').first().fill(api.env.API_KEYS!);
    await page.locator('.auth-btn-wrapper button.authorize').click();
    await page.locator('.btn-done').click();
    const op = page.locator('.opblock-get', { has: page.locator('.opblock-summary-path[data-path="/api/agents/{id}"]') });
    await op.locator('.opblock-summary').click();
    await op.locator('.try-out__btn').click();
    await op.locator('input[placeholder="id"]').fill('docs');
    await op.locator('.execute').click();
    await op.locator('.live-responses-table tbody .response-col_status').first().waitFor();
    expect((await op.locator('.live-responses-table tbody .response-col_status').first().innerText()).trim()).to.equal('200');
    expect(await op.locator('.live-responses-table .microlight').first().innerText()).to.include('"id": "docs"');

    expect(seen.offsite, 'requests off this server').to.deep.equal([]);
    expect(seen.problems.filter((p) => /Content Security Policy|Refused/.test(p)), 'CSP violations').to.deep.equal([]);
    await context.close();
  });

  it('/admin/queues shows the queues with their job counts to the admin key', async () => {
    await api.call('POST', '/api/agents/register', agentBody('board'));
    await api.call('POST', '/api/sessions/batch', { agentId: 'board', count: 4, scheduledAt: new Date(Date.now() + 3_600_000).toISOString() });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, // What a browser sends once its user typed the key into the Basic prompt (any user name).
      extraHTTPHeaders: { authorization: `Basic ${Buffer.from(`ops:${ADMIN_KEY}`).toString('base64')}` },
    });
    const page = await context.newPage();
    const seen = watch(page);
    await page.goto(`${api.url}/admin/queues`);
    await page.getByText('sessions', { exact: true }).first().waitFor();
    for (const name of ['join-checks', 'callbacks']) expect(await page.getByText(name, { exact: true }).count(), name).to.be.greaterThan(0);
    // Each queue's card: its name, then its job count (the sessions queue holds the 4 delayed jobs).
    await page.getByText('4 Jobs').waitFor();
    const text = await page.locator('main').innerText();
    expect(text).to.match(/sessions\s+(No workers\s+)?4 Jobs/);
    expect(text).to.match(/join-checks\s+(No workers\s+)?0 Jobs/);
    expect(text).to.match(/callbacks\s+(No workers\s+)?0 Jobs/);
    await page.screenshot({ path: path.join(IMAGES, 'queues.png') });
    expect(seen.offsite, 'requests off this server').to.deep.equal([]);
    await context.close();

    const anonymous = await browser.newContext();
    // (A page would show the browser's key prompt; headless Chromium reports it as a navigation error.)
    const refused = await anonymous.request.get(`${api.url}/admin/queues`);
    expect(refused.status()).to.equal(401);
    await anonymous.close();
  });
});
