import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * docker-compose.yml as Compose itself resolves it. Needs the `docker-compose`
 * command (Debian: apt-get install docker-compose), not a Docker engine.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const APP_SERVICES = ['api', 'dispatcher', 'worker'] as const;
const CONNECTION_VARS = ['REDIS_URL', 'MONGODB_URI', 'LIVEKIT_URL', 'LIVEKIT_API_KEY', 'LIVEKIT_API_SECRET'] as const;

type Yaml = string | Yaml[] | { [key: string]: Yaml };
type Service = Record<string, Yaml>;

/**
 * Runs docker-compose with only PATH and HOME from this process and an empty
 * env file, so neither the developer's shell nor a local .env changes the result.
 */
function compose(args: string[], env: Record<string, string> = {}): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'compose-test-'));
  const envFile = path.join(dir, 'empty.env');
  writeFileSync(envFile, '');
  try {
    return execFileSync('docker-compose', ['--env-file', envFile, '-f', 'docker-compose.yml', ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? dir, ...env },
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('docker-compose is not installed (Debian: apt-get install docker-compose)');
    }
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`docker-compose ${args.join(' ')} failed: ${stderr.trim() || (err as Error).message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// --- a reader for the block-style YAML that `docker-compose config` (PyYAML) prints ---

interface Line {
  indent: number;
  text: string;
}

function unquote(raw: string): string {
  const s = raw.trim();
  if (s.startsWith("'")) return s.slice(1, -1).replace(/''/g, "'");
  if (s.startsWith('"')) {
    return s.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)/g, (_m, e: string) => {
      if (e.length > 1) return String.fromCharCode(parseInt(e.slice(1), 16));
      return ({ n: '\n', t: '\t', r: '\r', '0': '\0', ' ': ' ', '"': '"', '\\': '\\', '/': '/' } as Record<string, string>)[e] ?? e;
    });
  }
  if (s === '{}' || s === '[]') throw new Error('empty flow collection is handled by the caller');
  return s;
}

/** A scalar that may continue on more-indented lines: folds them the way YAML does. */
function scalar(first: string, rest: Line[]): string {
  const s = first.trim();
  if (/^[|>]/.test(s)) throw new Error(`block scalars are not expected in docker-compose config output: ${s}`);
  if (s.startsWith('"')) {
    // A line ending in an unescaped backslash continues without a space; otherwise a break folds to one space.
    let out = first.trimEnd();
    for (const l of rest) {
      if (/(^|[^\\])(\\\\)*\\$/.test(out)) out = out.slice(0, -1) + l.text.trimEnd();
      else out += ` ${l.text.trimEnd()}`;
    }
    return unquote(out);
  }
  return unquote([s, ...rest.map((l) => l.text.trim())].join(' '));
}

const KEY = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s'"#-][^]*?|-[^\s][^]*?):(?: (.*))?$/;

function parseBlock(lines: Line[], indent: number): Yaml {
  if (lines.length === 0) return '';
  if (lines[0]!.text.startsWith('- ') || lines[0]!.text === '-') return parseSeq(lines, indent);
  return parseMap(lines, indent);
}

function parseMap(lines: Line[], indent: number): Record<string, Yaml> {
  const out: Record<string, Yaml> = {};
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.indent !== indent) throw new Error(`unexpected indentation at: ${line.text}`);
    const m = KEY.exec(line.text);
    if (!m) throw new Error(`not a mapping entry: ${line.text}`);
    const key = unquote(m[1]!);
    const value = m[2];
    let j = i + 1;
    if (value === undefined || value === '') {
      // Children are more indented, or an indentless sequence at the same indent.
      while (j < lines.length && (lines[j]!.indent > indent || (lines[j]!.indent === indent && lines[j]!.text.startsWith('- ')))) j++;
      const child = lines.slice(i + 1, j);
      out[key] = child.length ? parseBlock(child, child[0]!.indent) : '';
    } else {
      while (j < lines.length && lines[j]!.indent > indent) j++;
      out[key] = value === '{}' ? {} : value === '[]' ? [] : scalar(value, lines.slice(i + 1, j));
    }
    i = j;
  }
  return out;
}

function parseSeq(lines: Line[], indent: number): Yaml[] {
  const out: Yaml[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.indent !== indent || !line.text.startsWith('-')) throw new Error(`not a sequence item: ${line.text}`);
    let j = i + 1;
    while (j < lines.length && lines[j]!.indent > indent) j++;
    const first = line.text.slice(1).trimStart();
    const rest = lines.slice(i + 1, j);
    if (KEY.test(first) && !/^['"]/.test(first)) {
      // A mapping item: its first entry sits after "- ", the others are indented to match.
      out.push(parseMap([{ indent: indent + 2, text: first }, ...rest], indent + 2));
    } else {
      out.push(scalar(first, rest));
    }
    i = j;
  }
  return out;
}

function parseYaml(text: string): Record<string, Yaml> {
  const lines = text
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'))
    .map((l) => ({ indent: l.length - l.trimStart().length, text: l.trim() }));
  return parseMap(lines, 0);
}

// --- the resolved configuration ---

function resolved(env: Record<string, string> = {}): Record<string, Service> {
  return parseYaml(compose(['config'], env)).services as Record<string, Service>;
}

function environment(service: Service | undefined): Record<string, string> {
  expect(service, 'service').to.be.an('object');
  const env = service!.environment;
  expect(env, 'environment (as a mapping)').to.be.an('object').and.not.be.an('array');
  return env as Record<string, string>;
}

function command(service: Service | undefined): string[] {
  const c = service?.command;
  return Array.isArray(c) ? (c as string[]) : typeof c === 'string' ? c.split(/\s+/) : [];
}

function livekitConfig(services: Record<string, Service>): Record<string, Yaml> {
  const body = environment(services.livekit).LIVEKIT_CONFIG;
  expect(body, 'LIVEKIT_CONFIG').to.be.a('string').and.not.equal('');
  return parseYaml(body!);
}

describe('docker-compose.yml', () => {
  let services: Record<string, Service>;
  before(() => {
    compose(['config', '-q']);
    services = resolved();
  });

  it('when compose lists the services, then the whole stack is there', () => {
    const names = compose(['config', '--services']).split('\n').filter(Boolean);
    expect(names).to.include.members(['redis', 'mongo', 'livekit', 'api', 'dispatcher', 'worker']);
  });

  it('when redis starts, then it keeps an append-only file synced every second and never evicts (BullMQ)', () => {
    const args = command(services.redis);
    expect(args[0]).to.equal('redis-server');
    const arg = (flag: string) => args[args.indexOf(flag) + 1];
    expect(args).to.include('--appendonly');
    expect(arg('--appendonly')).to.equal('yes');
    expect(arg('--appendfsync')).to.equal('everysec');
    expect(arg('--maxmemory-policy')).to.equal('noeviction');
    expect(services.redis!.volumes).to.be.an('array').that.is.not.empty;
  });

  it('when workers are scaled, then nothing pins their container name', () => {
    expect(services.worker).to.be.an('object');
    expect(services.worker).not.to.have.property('container_name');
    expect(command(services.worker)).to.deep.equal(['node', 'dist/worker/main.js', 'start']);
  });

  it('when an app service starts, then it reaches redis, mongo and livekit by their service names', () => {
    for (const name of APP_SERVICES) {
      const env = environment(services[name]);
      for (const v of CONNECTION_VARS) expect(env, `${name} ${v}`).to.have.property(v).that.is.a('string').and.not.equal('');
      expect(env.REDIS_URL, name).to.equal('redis://redis:6379');
      expect(env.MONGODB_URI, name).to.equal('mongodb://mongo:27017/agent-runtime');
      expect(env.LIVEKIT_URL, name).to.equal('ws://livekit:7880');
    }
    expect(environment(services.api).HOST).to.equal('0.0.0.0');
    expect(command(services.dispatcher)).to.deep.equal(['node', 'dist/dispatcher/main.js']);
  });

  it('when livekit starts, then it sends webhooks to the api, signed with the key the services use', () => {
    const lk = livekitConfig(services);
    const webhook = lk.webhook as Record<string, Yaml>;
    expect(webhook.urls).to.deep.equal(['http://api:8080/api/livekit/webhook']);
    const api = environment(services.api);
    expect(webhook.api_key).to.equal(api.LIVEKIT_API_KEY);
    expect(lk.keys).to.deep.equal({ [api.LIVEKIT_API_KEY!]: api.LIVEKIT_API_SECRET });
    expect(lk.port).to.equal('7880');
    expect(lk.rtc).to.include({ tcp_port: '7881', udp_port: '7882' });
    const ports = (services.livekit!.ports as Record<string, string>[]).map((p) => `${p.published}->${p.target}/${p.protocol ?? 'tcp'}`);
    expect(ports).to.include.members(['7880->7880/tcp', '7881->7881/tcp', '7882->7882/udp']);
  });

  it('when the host sets keys and secrets, then every service gets them and livekit trusts the same key', () => {
    const host = {
      LIVEKIT_API_KEY: 'prod-key-123',
      LIVEKIT_API_SECRET: 'a-production-secret-of-at-least-32-chars',
      API_KEYS: 'key-one-12345,key-two-67890',
      OPENAI_API_KEY: 'sk-test-openai',
      DEEPGRAM_API_KEY: 'dg-test',
      BITHUMAN_API_SECRET: 'bh-test',
      AGENT_NAME: 'support-agent',
    };
    const s = resolved(host);
    for (const name of APP_SERVICES) {
      const env = environment(s[name]);
      for (const v of ['LIVEKIT_API_KEY', 'LIVEKIT_API_SECRET', 'OPENAI_API_KEY', 'DEEPGRAM_API_KEY', 'BITHUMAN_API_SECRET', 'AGENT_NAME'] as const) {
        expect(env[v], `${name} ${v}`).to.equal(host[v]);
      }
    }
    expect(environment(s.api).API_KEYS).to.equal(host.API_KEYS);
    const lk = livekitConfig(s);
    expect(lk.keys).to.deep.equal({ [host.LIVEKIT_API_KEY]: host.LIVEKIT_API_SECRET });
    expect((lk.webhook as Record<string, Yaml>).api_key).to.equal(host.LIVEKIT_API_KEY);
  });
});
