import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { RunningDispatcher } from '../../dispatcher/server.js';
import { ROOT } from '../../tools/lib/paths.js';
import { agentBody, startTestApi, TEST_API_KEY, type TestApi } from '../support/api.js';
import { startTestDispatcher } from '../support/dispatcher.js';

const BIN = path.join(ROOT, 'bin', 'agent-runtime.mjs');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A command's process with its output as it comes; `done` when it exits. */
function start(cmd: string, args: string[], env: Record<string, string>) {
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ code, ...out })));
  /** Resolves once stdout matches (or rejects when the process ends first). */
  const seen = (re: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (re.test(out.stdout)) {
          clearInterval(timer);
          resolve();
        }
      };
      const timer = setInterval(check, 20);
      void done.then(() => {
        clearInterval(timer);
        if (re.test(out.stdout)) resolve();
        else reject(new Error(`exited before ${re}: ${out.stdout} ${out.stderr}`));
      });
    });
  return { child, done, seen, out };
}

describe('the agent-runtime CLI', () => {
  let api: TestApi;
  let dispatcher: RunningDispatcher | undefined;
  let env: Record<string, string>;
  let dir: string;

  const cli = (...args: string[]) => start(process.execPath, [BIN, ...args], env).done;

  before(async () => {
    api = await startTestApi();
    env = { AGENT_RUNTIME_URL: api.url, AGENT_RUNTIME_KEY: TEST_API_KEY };
    dir = mkdtempSync(path.join(os.tmpdir(), 'cli-'));
  });
  after(async () => {
    await dispatcher?.stop();
    await api.stop();
  });

  it('registers an agent from a file, lists it and rolls it back, with --json output a script can parse', async () => {
    const file = path.join(dir, 'agent.json');
    writeFileSync(file, JSON.stringify(agentBody('cli-a')));
    const first = await cli('--json', 'agents', 'register', file);
    expect(first.code, first.stderr).to.equal(0);
    expect(JSON.parse(first.stdout)).to.include({ id: 'cli-a', version: 1 });
    writeFileSync(file, JSON.stringify(agentBody('cli-a', { name: 'Changed' })));
    expect((await cli('agents', 'register', file)).stdout.trim()).to.equal('agent cli-a at version 2');

    const list = await cli('--json', 'agents', 'list');
    expect(list.code).to.equal(0);
    expect(JSON.parse(list.stdout).map((a: { id: string }) => a.id)).to.include('cli-a');

    const back = await cli('--json', 'agents', 'rollback', 'cli-a', '1');
    expect(back.code, back.stderr).to.equal(0);
    expect(JSON.parse(back.stdout)).to.include({ id: 'cli-a', version: 3, name: 'Agent cli-a' });
  });

  it('creates, reads, lists and cancels a session', async () => {
    await api.call('POST', '/api/agents/register', agentBody('cli-s'));
    const created = await cli('--json', 'sessions', 'create', '--agent', 'cli-s');
    expect(created.code, created.stderr).to.equal(0);
    const { sessionId } = JSON.parse(created.stdout);
    const got = await cli('sessions', 'get', sessionId);
    expect(got.stdout).to.match(new RegExp(`^session ${sessionId} \\(agent cli-s\\) queued`));
    const list = await cli('--json', 'sessions', 'list', '--agent', 'cli-s');
    expect(JSON.parse(list.stdout).items.map((s: { sessionId: string }) => s.sessionId)).to.include(sessionId);
    const cancelled = await cli('--json', 'sessions', 'cancel', sessionId);
    expect(JSON.parse(cancelled.stdout).status).to.equal('cancelled');
  });

  it('exits non-zero with one line from the problem: an unknown session, a bad key, a bad file, no server', async () => {
    const missing = await cli('sessions', 'get', 'ses_000000000000000000000');
    expect(missing.code).to.equal(1);
    expect(missing.stdout).to.equal('');
    expect(missing.stderr).to.match(/^error: 404 Not found: .+\n$/);

    const badKey = await start(process.execPath, [BIN, '--key', 'wrong-key-123456', 'agents', 'list'], env).done;
    expect(badKey.code).to.equal(1);
    expect(badKey.stderr).to.match(/^error: 401 Unauthorized: the API key is not valid\n$/);

    const invalid = path.join(dir, 'invalid.json');
    writeFileSync(invalid, JSON.stringify({ id: 'x' }));
    const bad = await cli('agents', 'register', invalid);
    expect(bad.code).to.equal(1);
    expect(bad.stderr.trim().split('\n')).to.have.length(1);
    expect(bad.stderr).to.match(/^error: 400 .*name/);

    const away = await start(process.execPath, [BIN, '--url', 'http://127.0.0.1:9', 'agents', 'list'], env).done;
    expect(away.code).to.equal(2);
    expect(away.stderr).to.match(/^error: cannot reach http:\/\/127.0.0.1:9/);
  });

  it('in a terminal, a batch redraws one progress bar from its event stream until every session is dispatched', async () => {
    await api.call('POST', '/api/agents/register', agentBody('cli-b'));
    const command = [process.execPath, BIN, 'sessions', 'create', '--agent', 'cli-b', '--count', '20'].map((a) => `'${a}'`).join(' ');
    // script(1) gives the CLI a pseudo-terminal, as a person's shell would.
    const run = start('script', ['-qfc', command, '/dev/null'], env);
    // No dispatcher yet: the first bar shows every session queued; then one starts and they move on.
    await run.seen(/\r\x1b\[2K\[-{30}\] 0\/20 \| queued 20 \|/);
    dispatcher = await startTestDispatcher(api.env);
    const result = await run.done;
    expect(result.code, result.stdout).to.equal(0);
    const frames = result.stdout.split('\r\x1b[2K').slice(1);
    expect(frames.length).to.be.greaterThan(1);
    expect(frames[0]).to.match(/^\[-{30}\] 0\/20 \| queued 20 \| 0\.0\/s \| ETA \?/);
    const last = frames[frames.length - 1]!;
    expect(last).to.match(/^\[#{30}\] 20\/20 \| dispatched 20 \| [\d.]+\/s \| done/);
    expect(last).to.match(/batch bat_\w+: 20 sessions, dispatched 20\s*$/);
  });

  it('without a terminal, a batch prints plain progress lines and --json prints the final counts', async () => {
    dispatcher ??= await startTestDispatcher(api.env);
    await api.call('POST', '/api/agents/register', agentBody('cli-p'));
    const plain = await cli('sessions', 'create', '--agent', 'cli-p', '--count', '5');
    expect(plain.code, plain.stderr).to.equal(0);
    expect(plain.stdout).not.to.include('\r');
    expect(plain.stdout).not.to.include('[#');
    expect(plain.stdout).to.match(/^5\/5 \| dispatched 5 \| [\d.]+\/s \| done$/m);

    const json = await cli('--json', 'sessions', 'create', '--agent', 'cli-p', '--count', '4');
    expect(json.code, json.stderr).to.equal(0);
    const body = JSON.parse(json.stdout);
    expect(body).to.include({ accepted: 4, done: true });
    expect(body.counts.dispatched).to.equal(4);

    const watched = await cli('--json', 'batches', 'watch', body.batchId);
    expect(JSON.parse(watched.stdout)).to.include({ batchId: body.batchId, done: true });
  });
});
