import { expect } from 'chai';
import { apiEnv, ConfigError, loadConfig, sharedEnv } from '../../common/config.js';

describe('configuration from the environment', () => {
  it('when nothing is set, then the documented local defaults apply', () => {
    const c = loadConfig(apiEnv, {});
    expect(c.REDIS_URL).to.equal('redis://127.0.0.1:6379');
    expect(c.MONGODB_URI).to.equal('mongodb://127.0.0.1:27017/agent-runtime');
    expect(c.LIVEKIT_URL).to.equal('ws://127.0.0.1:7880');
    expect(c.LIVEKIT_API_KEY).to.equal('devkey-livekit-api-key-2024');
    expect(c.PORT).to.equal(8080);
    expect(c.API_KEYS).to.deep.equal(['dev-api-key']);
  });

  it('when a value is bad, then one error names the variable and what is expected, without the value', () => {
    let err: unknown;
    try {
      loadConfig(sharedEnv, { REDIS_URL: 'http://secret-host:1', LIVEKIT_API_SECRET: 'short' });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).to.match(/REDIS_URL: expected a URL starting with redis:\/\//);
    expect(msg).to.match(/LIVEKIT_API_SECRET: at least 32 characters/);
    expect(msg).not.to.include('secret-host');
    expect(msg).not.to.include('\n');
  });

  it('when a number is not a number, then the variable is named', () => {
    expect(() => loadConfig(apiEnv, { PORT: 'eighty' })).to.throw(ConfigError, /PORT/);
  });

  it('when NODE_ENV=production, then the development secrets are refused', () => {
    const prod = { NODE_ENV: 'production', LIVEKIT_API_KEY: 'k', LIVEKIT_API_SECRET: 'x'.repeat(40), CALLBACK_SECRET: 'c'.repeat(32) };
    expect(() => loadConfig(apiEnv, prod)).to.throw(ConfigError, /API_KEYS: the development default is refused/);
    expect(() => loadConfig(sharedEnv, { ...prod, LIVEKIT_API_KEY: undefined })).to.throw(ConfigError, /LIVEKIT_API_KEY/);
    expect(() => loadConfig(apiEnv, { ...prod, API_KEYS: 'a-real-key-1234', CALLBACK_SECRET: undefined })).to.throw(ConfigError, /CALLBACK_SECRET/);
    const ok = loadConfig(apiEnv, { ...prod, API_KEYS: 'a-real-key-1234,another-key-5678' });
    expect(ok.API_KEYS).to.deep.equal(['a-real-key-1234', 'another-key-5678']);
  });
});

describe('Redis Cluster settings', () => {
  it('when REDIS_URL names a cluster, then QUEUE_PREFIX must carry a hash tag (every key in one slot), else start is refused naming it', () => {
    const url = 'redis://127.0.0.1:7000?cluster=1';
    expect(() => loadConfig(sharedEnv, { REDIS_URL: url, QUEUE_PREFIX: 'agent-runtime' })).to.throw(ConfigError, /^invalid configuration: QUEUE_PREFIX: .*hash tag/);
    expect(loadConfig(sharedEnv, { REDIS_URL: url, QUEUE_PREFIX: '{agent-runtime}' }).QUEUE_PREFIX).to.equal('{agent-runtime}');
    // A single Redis takes any prefix.
    expect(loadConfig(sharedEnv, { REDIS_URL: 'redis://127.0.0.1:6379', QUEUE_PREFIX: 'agent-runtime' }).QUEUE_PREFIX).to.equal('agent-runtime');
  });
});

describe('.env.example', () => {
  it('lists every variable of every service with its default (regenerate with npm run env:example)', async () => {
    const { readFileSync } = await import('node:fs');
    const { renderEnvExample } = await import('../../tools/env-example.js');
    expect(readFileSync(new URL('../../.env.example', import.meta.url), 'utf8')).to.equal(renderEnvExample());
  });
});
