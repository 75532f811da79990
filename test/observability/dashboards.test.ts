/**
 * The Grafana dashboards in grafana/dashboards/ are linted as files, and then
 * proven against the real thing: the API and a dispatcher in this process, a
 * worker process, and a real Prometheus (Debian's `prometheus` package, which
 * brings `promtool` too) scraping their /metrics every second. Every PromQL
 * expression of every panel must parse and return at least one series.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { freePort } from '../support/own-server.js';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Room } from '@livekit/rtc-node';
import { expect } from 'chai';
import { livekitClients } from '../../common/livekit.js';
import type { RunningDispatcher } from '../../dispatcher/server.js';
import { ROOT } from '../../tools/lib/paths.js';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';
import { startTestDispatcher } from '../support/dispatcher.js';
import { uniqueName } from '../support/env.js';
import { startFakeDeepgram, type FakeDeepgram } from '../support/fakes/deepgram.js';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fakes/openai.js';
import { OwnLivekit } from '../support/livekit-server.js';
import { joinRoom } from '../support/participant.js';
import { sample } from '../support/prometheus-text.js';
import { until } from '../support/sessions.js';

const GRAFANA = path.join(ROOT, 'grafana');
const DASHBOARDS = path.join(GRAFANA, 'dashboards');
const DATASOURCE_UID = 'prometheus';
const UNITS = new Set(['s', 'ms', 'reqps', 'ops', 'short', 'none', 'percent', 'percentunit', 'bytes']);
const WAIT_MS = 60_000;
/**
 * promtool's lint findings on prom-client's own default metrics, which the
 * services do not name: these gauges count live handles, requests and
 * resources and end in _total all the same. Anything else promtool says fails.
 */
const PROM_CLIENT_LINT = ['nodejs_active_handles_total ', 'nodejs_active_requests_total ', 'nodejs_active_resources_total '];

interface Target {
  refId?: string;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels?: Panel[];
}

function dashboards(): { file: string; dashboard: Dashboard }[] {
  return readdirSync(DASHBOARDS)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, dashboard: JSON.parse(readFileSync(path.join(DASHBOARDS, file), 'utf8')) as Dashboard }));
}

/** The panels that query (a row is only a heading: its own panels count, it does not). */
function panelsOf(d: Dashboard): Panel[] {
  return (d.panels ?? []).flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));
}

function exprsOf(p: Panel): string[] {
  return (p.targets ?? []).map((t) => t.expr ?? '');
}

/** Every expression of every panel, named by where it is. */
function allExprs(): { where: string; expr: string }[] {
  return dashboards().flatMap(({ file, dashboard }) =>
    panelsOf(dashboard).flatMap((p) => (p.targets ?? []).map((t) => ({ where: `${file} / ${p.title} / ${t.refId}`, expr: t.expr ?? '' }))),
  );
}

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}


/** Ends a process we started (and, for a group leader, the processes it forked): TERM, then KILL. */
async function stopProcess(child: ChildProcess | undefined, group = false): Promise<void> {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(group ? -child.pid! : child.pid!, sig);
    } catch {
      /* already gone */
    }
  };
  signal('SIGTERM');
  const timer = sleep(5_000).then(() => 'timeout' as const);
  if ((await Promise.race([exited, timer])) === 'timeout') {
    signal('SIGKILL');
    await Promise.race([exited, sleep(2_000)]);
  } else if (group) signal('SIGKILL'); // job processes left behind by the worker
}

interface PromResult {
  status: string;
  error?: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

describe('grafana dashboards', () => {
  describe('as files', () => {
    it('when the dashboards are read, then every uid is unique and every panel is titled, has a unit and queries the provisioned Prometheus', () => {
      const all = dashboards();
      expect(all.map((d) => d.file)).to.include.members(['agent-runtime-overview.json', 'agent-runtime-api.json', 'agent-runtime-dispatcher.json', 'agent-runtime-worker.json']);
      const uids = all.map((d) => d.dashboard.uid);
      expect(uids.every((u) => typeof u === 'string' && u.length > 0), 'every dashboard has a uid').to.equal(true);
      expect(new Set(uids).size, `dashboard uids ${uids.join(', ')}`).to.equal(uids.length);

      const problems: string[] = [];
      for (const { file, dashboard } of all) {
        if (!dashboard.title) problems.push(`${file}: no title`);
        if (typeof dashboard.schemaVersion !== 'number' || dashboard.schemaVersion < 36) problems.push(`${file}: schemaVersion ${dashboard.schemaVersion}`);
        const panels = panelsOf(dashboard);
        if (panels.length === 0) problems.push(`${file}: no panels`);
        const ids = panels.map((p) => p.id);
        if (new Set(ids).size !== ids.length) problems.push(`${file}: panel ids repeat`);
        for (const p of panels) {
          const at = `${file} / ${p.title ?? `panel ${p.id}`}`;
          if (!p.title?.trim()) problems.push(`${at}: no title`);
          if (p.type !== 'timeseries' && p.type !== 'stat') problems.push(`${at}: type ${p.type}`);
          const unit = p.fieldConfig?.defaults?.unit;
          if (!unit || !UNITS.has(unit)) problems.push(`${at}: unit ${unit ?? 'missing'}`);
          if (p.datasource?.type !== 'prometheus' || p.datasource.uid !== DATASOURCE_UID) problems.push(`${at}: datasource ${JSON.stringify(p.datasource)}`);
          if (!p.targets?.length) problems.push(`${at}: no targets`);
          const refIds = (p.targets ?? []).map((t) => t.refId);
          if (new Set(refIds).size !== refIds.length || refIds.some((r) => !r)) problems.push(`${at}: refIds ${refIds.join(',')}`);
          for (const t of p.targets ?? []) {
            if (!t.expr?.trim()) problems.push(`${at} / ${t.refId}: no expr`);
            if (t.datasource && (t.datasource.type !== 'prometheus' || t.datasource.uid !== DATASOURCE_UID)) problems.push(`${at} / ${t.refId}: datasource ${JSON.stringify(t.datasource)}`);
          }
        }
      }
      expect(problems).to.deep.equal([]);
    });

    it('when the provisioning is read, then the datasource uid is the one the panels name and dashboards load from the mounted folder', () => {
      const ds = readFileSync(path.join(GRAFANA, 'provisioning/datasources/prometheus.yml'), 'utf8');
      expect(ds).to.match(/^\s+uid:\s*prometheus\s*$/m);
      expect(ds).to.match(/^\s+type:\s*prometheus\s*$/m);
      expect(ds).to.match(/^\s+url:\s*http:\/\/prometheus:9090\s*$/m);
      expect(ds).to.match(/^\s+isDefault:\s*true\s*$/m);
      const providers = readFileSync(path.join(GRAFANA, 'provisioning/dashboards/dashboards.yml'), 'utf8');
      expect(providers).to.match(/^\s+type:\s*file\s*$/m);
      expect(providers).to.match(/^\s+path:\s*\/var\/lib\/grafana\/dashboards\s*$/m);
    });

    it('when the overview is read, then it has the panels an operator looks at first', () => {
      const overview = dashboards().find((d) => d.dashboard.uid === 'agent-runtime-overview')!.dashboard;
      const panels = panelsOf(overview);
      const find = (title: RegExp) => {
        const p = panels.find((x) => title.test(x.title ?? '') && x.type === 'timeseries');
        expect(p, `an overview panel titled ${title}`).to.not.equal(undefined);
        return exprsOf(p!).join('\n');
      };
      expect(find(/request rate/i)).to.include('agent_runtime_http_requests_total');
      expect(find(/queue depth/i)).to.include('agent_runtime_queue_jobs');
      const dispatch = find(/dispatch latency/i);
      for (const q of ['0.5', '0.95', '0.99']) expect(dispatch).to.include(`histogram_quantile(${q}, sum by (le) (rate(agent_runtime_dispatch_duration_seconds_bucket[1m])))`);
      expect(find(/stage/i)).to.include('histogram_quantile(0.5, sum by (le, stage) (rate(agent_runtime_session_stage_seconds_bucket[1m])))');
      expect(find(/active sessions by agent/i)).to.match(/sum by \(agent_id\) \(agent_runtime_worker_active_sessions\)/);
      const failures = find(/failures by reason/i);
      expect(failures).to.include('agent_runtime_dispatch_outcomes_total{result="failed"}').and.to.include('agent_runtime_worker_jobs_total{result="failed"}');
      expect(find(/cache hit ratio/i)).to.include('agent_runtime_config_cache_total').and.to.include('tier');
      expect(find(/worker capacity/i)).to.include('agent_runtime_worker_slots').and.to.include('agent_runtime_sessions_waiting_for_capacity');
      expect(find(/placed again and recovered/i)).to.include('agent_runtime_placements_total').and.to.include('agent_runtime_recoveries_total');
      const voice = find(/voice-to-voice/i);
      for (const q of ['0.5', '0.95']) expect(voice).to.include(`histogram_quantile(${q}, sum by (le) (rate(agent_runtime_turn_latency_seconds_bucket[1m])))`);
      expect(voice).to.include('agent_runtime_turn_part_seconds_bucket');
      const load = panels.filter((p) => /worker load/i.test(p.title ?? '')).flatMap(exprsOf).join('\n');
      expect(load).to.include('process_cpu_seconds_total{service="worker"}').and.to.include('agent_runtime_worker_jobs_total{result="received"}');
    });

    it('when a service dashboard is read, then it shows that service\'s CPU, memory and event-loop lag', () => {
      for (const service of ['api', 'dispatcher', 'worker']) {
        const d = dashboards().find((x) => x.dashboard.uid === `agent-runtime-${service}`);
        expect(d, `dashboard agent-runtime-${service}`).to.not.equal(undefined);
        const exprs = panelsOf(d!.dashboard).flatMap(exprsOf).join('\n');
        for (const metric of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds']) {
          expect(exprs, `${service}: ${metric}`).to.include(`${metric}{service="${service}"}`);
        }
      }
    });

    it('when the docker-compose Prometheus config is read, then it scrapes the api, the dispatcher and every worker replica', () => {
      const text = readFileSync(path.join(GRAFANA, 'prometheus.yml'), 'utf8');
      expect(text).to.match(/scrape_interval:\s*15s/);
      expect(text).to.include("targets: ['api:8080']").and.to.include("targets: ['dispatcher:9465']");
      expect(text).to.match(/dns_sd_configs:\s*\n\s*- names: \['worker'\]\s*\n\s*type: A\s*\n\s*port: 9466/);
    });
  });

  describe('against a running stack scraped by a real Prometheus', function () {
    this.timeout(240_000);
    let tmp: string | undefined;
    let openai: FakeOpenAI | undefined;
    let deepgram: FakeDeepgram | undefined;
    let livekit: OwnLivekit | undefined;
    let api: TestApi | undefined;
    let dispatcher: RunningDispatcher | undefined;
    let worker: ChildProcess | undefined;
    let prometheus: ChildProcess | undefined;
    let participant: Room | undefined;
    let promUrl = '';
    const ports = { api: 0, dispatcher: 0, worker: 0 };
    const workerLog: string[] = [];
    const promLog: string[] = [];
    const keep = (buf: string[], line: string) => {
      buf.push(line);
      if (buf.length > 60) buf.shift();
    };
    const logs = () => `\n--- worker output (last lines) ---\n${workerLog.join('\n')}\n--- prometheus output (last lines) ---\n${promLog.join('\n')}`;

    async function query(expr: string): Promise<PromResult> {
      const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
      return (await res.json()) as PromResult;
    }
    const metricsText = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    /** Polls `ready` for at most WAIT_MS; gives up at once when `dead` names a reason. */
    async function waitFor(what: string, ready: () => boolean | Promise<boolean>, dead: () => string | undefined = () => undefined) {
      const deadline = Date.now() + WAIT_MS;
      for (;;) {
        if (await ready()) return;
        const reason = dead() ?? (Date.now() > deadline ? `not within ${WAIT_MS} ms` : undefined);
        if (reason) throw new Error(`waiting for ${what}: ${reason}${logs()}`);
        await sleep(200);
      }
    }

    before(async function () {
      const missing = ['promtool', 'prometheus'].filter((c) => !onPath(c));
      if (missing.length) {
        throw new Error(`${missing.join(' and ')} not on PATH: these tests run a real Prometheus (Debian: apt-get install prometheus)`);
      }
      tmp = mkdtempSync(path.join(os.tmpdir(), 'agent-runtime-grafana-'));
      [openai, deepgram] = await Promise.all([startFakeOpenAI(), startFakeDeepgram()]);

      // A LiveKit server of our own, its webhooks to our API (the agent_joined stage), and
      // join checks after 5 s, so the join-check panel has something to show.
      livekit = await OwnLivekit.create();
      api = await startTestApi({ LIVEKIT_URL: livekit.url, AGENT_JOIN_TIMEOUT: '5' });
      livekit.webhookUrl = `${api.url}/api/livekit/webhook`;
      await livekit.up();
      ports.api = api.port;
      dispatcher = await startTestDispatcher(api.env);
      ports.dispatcher = dispatcher.metricsPort;

      // A worker process, as in production: it forks job processes that report to its /metrics.
      worker = spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts', 'dev'], {
        cwd: ROOT,
        detached: true, // its own process group: the job processes it forks end with it
        env: {
          ...process.env,
          ...api.env,
          LOG_LEVEL: 'info',
          WORKER_HOST: '127.0.0.1',
          WORKER_METRICS_PORT: '0',
          WORKER_HEALTH_PORT: '0',
          WORKER_LOAD_THRESHOLD: '1',
          WORKER_IDLE_PROCESSES: '1',
          OPENAI_API_KEY: 'sk-test-dashboards',
          DEEPGRAM_API_KEY: 'dg-test-dashboards',
          OPENAI_BASE_URL: openai.url,
          DEEPGRAM_BASE_URL: deepgram.httpUrl,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let registered = false;
      for (const stream of [worker.stdout!, worker.stderr!]) {
        readline.createInterface({ input: stream }).on('line', (line) => {
          keep(workerLog, line);
          if (line.includes('registered worker')) registered = true;
          if (!line.includes('worker metrics listening')) return;
          try {
            ports.worker = (JSON.parse(line) as { metricsPort: number }).metricsPort;
          } catch {
            /* not the JSON line */
          }
        });
      }
      await waitFor('the worker to serve /metrics and register with LiveKit', () => ports.worker > 0 && registered, () =>
        worker!.exitCode !== null || worker!.signalCode !== null ? `the worker exited (${worker!.exitCode ?? worker!.signalCode})` : undefined,
      );

      // A real Prometheus scraping the three /metrics every second.
      const promPort = await freePort();
      promUrl = `http://127.0.0.1:${promPort}`;
      const job = (name: string, port: number) => `  - job_name: ${name}\n    static_configs:\n      - targets: ['127.0.0.1:${port}']\n`;
      writeFileSync(
        path.join(tmp, 'prometheus.yml'),
        `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n${job('api', ports.api)}${job('dispatcher', ports.dispatcher)}${job('worker', ports.worker)}`,
      );
      prometheus = spawn(
        'prometheus',
        [
          `--config.file=${path.join(tmp, 'prometheus.yml')}`,
          `--storage.tsdb.path=${path.join(tmp, 'data')}`,
          `--web.listen-address=127.0.0.1:${promPort}`,
          '--log.level=warn',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      for (const stream of [prometheus.stdout!, prometheus.stderr!]) readline.createInterface({ input: stream }).on('line', (l) => keep(promLog, l));
      await waitFor('Prometheus to scrape all three targets', async () => {
        const up = await query('up').catch(() => undefined);
        return up?.data?.result.length === 3 && up.data.result.every((s) => s.value[1] === '1');
      }, () => (prometheus!.exitCode !== null ? `prometheus exited (${prometheus!.exitCode})` : undefined));

      // Traffic: a batch and a single session for a real agent, a request without a key (401).
      await api.call('POST', '/api/agents/register', agentBody('dash'));
      await api.call('POST', '/api/agents/register', agentBody('gone'));
      const batch = await api.call('POST', '/api/sessions/batch', { agentId: 'dash', count: 2 });
      expect(batch.status, JSON.stringify(batch.body)).to.equal(202);
      const single = await api.call('POST', '/api/sessions', { agentId: 'dash' });
      expect(single.status, JSON.stringify(single.body)).to.equal(202);
      await api.call('GET', `/api/sessions/${single.body.sessionId}`);
      await fetch(`${api.url}/api/sessions/${single.body.sessionId}`);
      // A dispatch failure: a session due in 2 s whose agent is deleted before then.
      const doomed = await api.call('POST', '/api/sessions', { agentId: 'gone', scheduledAt: new Date(Date.now() + 2_000).toISOString() });
      expect(doomed.status, JSON.stringify(doomed.body)).to.equal(202);
      expect((await api.call('DELETE', '/api/agents/gone')).status).to.be.oneOf([200, 204]);
      // A user in one session's room, as in production.
      participant = await joinRoom(single.body.livekitUrl, single.body.participantToken);

      // A worker job failure: a dispatch of our agent whose metadata names no agent, in a room whose name names none.
      const { rooms, dispatch } = livekitClients(api.env as never);
      const strayDispatch = async () => {
        const room = uniqueName('obs-stray');
        await rooms.createRoom({ name: room, emptyTimeout: 30 });
        await dispatch.createDispatch(room, api!.env.AGENT_NAME!, { metadata: '{}' });
      };
      await strayDispatch();

      // Until the worker and the dispatcher have reported what the dashboards show. LiveKit
      // offers a job only to a worker whose last reported load (the machine's CPU) leaves
      // room, and does not offer it again: while the worker has taken none, ask again.
      const deadline = Date.now() + 2 * WAIT_MS;
      let again = Date.now() + 8_000;
      for (;;) {
        const [w, d] = await Promise.all([metricsText(ports.worker), metricsText(ports.dispatcher)]);
        const accepted = sample(w, 'agent_runtime_worker_jobs_total', { result: 'accepted' }) ?? 0;
        const stray = sample(w, 'agent_runtime_worker_jobs_total', { result: 'failed', reason: 'no_agent_id' }) ?? 0;
        const notFound = sample(d, 'agent_runtime_dispatch_outcomes_total', { result: 'failed', reason: 'agent_not_found' }) ?? 0;
        const joinChecks = sample(d, 'agent_runtime_redispatches_total');
        if (accepted >= 1 && stray >= 1 && notFound >= 1 && joinChecks !== undefined) break;
        if (Date.now() > deadline) {
          const ours = (text: string) => text.split('\n').filter((l) => l.startsWith('agent_runtime') && !l.includes('_bucket')).join('\n');
          throw new Error(`the stack did not produce the events within ${2 * WAIT_MS} ms\n${ours(w)}\n${ours(d)}${logs()}`);
        }
        if (Date.now() > again) {
          if (accepted === 0) await api.call('POST', '/api/sessions', { agentId: 'dash' });
          if (stray === 0) await strayDispatch();
          again = Date.now() + 8_000;
        }
        await sleep(250);
      }
    });

    after(async () => {
      await participant?.disconnect().catch(() => undefined);
      await stopProcess(prometheus);
      await stopProcess(worker, true);
      await dispatcher?.stop().catch(() => undefined);
      await api?.stop().catch(() => undefined);
      await livekit?.destroy().catch(() => undefined);
      await Promise.all([openai?.close(), deepgram?.close()].map((p) => p?.catch(() => undefined)));
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    });

    it('when promtool checks the /metrics of the api, the dispatcher and a worker, then it finds no problem', async () => {
      const problems: string[] = [];
      for (const [service, port] of Object.entries(ports)) {
        const text = await metricsText(port);
        expect(sample(text, 'process_cpu_seconds_total', { service }), `${service} process metrics`).to.be.a('number');
        const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
        const found = `${r.stdout}${r.stderr}`.split('\n').map((l) => l.trim()).filter(Boolean);
        // Exit 3: lint findings only (1 would be text Prometheus cannot parse).
        const ours = r.status === 3 ? found.filter((l) => !PROM_CLIENT_LINT.some((known) => l.startsWith(known))) : found;
        if (r.status !== 0 && (r.status !== 3 || ours.length)) problems.push(`${service} (exit ${r.status}): ${ours.join('; ')}`);
      }
      expect(problems).to.deep.equal([]);
    });

    it('when Prometheus evaluates every panel expression of every dashboard, then each parses and returns series', async () => {
      const exprs = allExprs();
      expect(exprs.length).to.be.greaterThan(40);
      const failing = async () => {
        const bad: string[] = [];
        for (const { where, expr } of exprs) {
          const r = await query(expr);
          if (r.status !== 'success') bad.push(`${where}: ${r.error} — ${expr}`);
          else if (!r.data?.result.length) bad.push(`${where}: no series — ${expr}`);
        }
        return bad;
      };
      // rate(...[1m]) needs two scrapes after the events: retry for a bounded time.
      let bad: string[] = [];
      await until(async () => (bad = await failing()).length === 0, WAIT_MS, 1_000).catch(() => undefined);
      expect(bad).to.deep.equal([]);
    });

    it('when the overview is evaluated, then its series carry what happened: the agent, the stages, both failure reasons, the cache tier', async () => {
      const overview = dashboards().find((d) => d.dashboard.uid === 'agent-runtime-overview')!.dashboard;
      const labels = async (title: RegExp, label: string) => {
        const panel = panelsOf(overview).find((p) => p.type === 'timeseries' && title.test(p.title ?? ''))!;
        const values = new Set<string>();
        for (const expr of exprsOf(panel)) for (const s of (await query(expr)).data?.result ?? []) if (s.metric[label]) values.add(s.metric[label]!);
        return [...values];
      };
      expect(await labels(/active sessions by agent/i, 'agent_id')).to.include('dash');
      expect(await labels(/stage/i, 'stage')).to.include.members(['accepted', 'dispatched', 'job_received', 'session_started']);
      expect(await labels(/failures by reason/i, 'reason')).to.include.members(['agent_not_found', 'no_agent_id']);
      expect(await labels(/cache hit ratio/i, 'tier')).to.not.be.empty;
    });
  });
});
