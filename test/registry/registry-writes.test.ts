import { expect } from 'chai';
import { agentConfigInput, agentModels, type AgentModels, configKey, versionId } from '../../common/agents/index.js';
import { connectMongo, type Connection } from '../../common/mongo.js';
import { createRedis, redisReady, type Redis } from '../../common/redis.js';
import { agentBody, startTestApi, type TestApi } from '../support/api.js';
import { stack } from '../support/env.js';

/**
 * POST /api/agents/register claims each version by the version row's `_id`
 * and starts from the agent's Redis entry: these pin what must hold whatever
 * the cache says and however writes race or die.
 */
describe('agent registry writes: races, a lagging cache, a write that died', () => {
  let api: TestApi;
  let conn: Connection;
  let models: AgentModels;
  let redis: Redis;

  before(async () => {
    api = await startTestApi();
    conn = await connectMongo(api.env.MONGODB_URI!);
    models = await agentModels(conn);
    redis = createRedis(stack.REDIS_URL);
    await redisReady(redis);
  });
  after(async () => {
    redis.disconnect();
    await conn.dropDatabase();
    await conn.close();
    await api.stop();
  });

  const register = (id: string, extra: Record<string, unknown> = {}) => api.call('POST', '/api/agents/register', agentBody(id, extra));
  const history = async (id: string) =>
    ((await api.call('GET', `/api/agents/${id}/versions?limit=100`)).body.items as { version: number; config: { instructions: string } | null }[]).map((v) => [
      v.version,
      v.config?.instructions ?? null,
    ]);
  const cached = async (id: string) => JSON.parse((await redis.get(configKey(api.env.QUEUE_PREFIX!, id)))!) as { version: number; config: { version: number; instructions: string } };

  it('when registers of one id with different configs race, then one is created and every other gets a version of its own, 1..n without a gap', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => register('race-reg', { instructions: `writer ${i}` })));
    expect(results.every((r) => [200, 201, 409].includes(r.status)), JSON.stringify(results.map((r) => r.status))).to.equal(true);
    const ok = results.filter((r) => r.status === 200 || r.status === 201);
    expect(results.filter((r) => r.status === 201)).to.have.length(1);
    const versions = ok.map((r) => r.body.version as number).sort((a, b) => a - b);
    expect(versions).to.deep.equal(Array.from({ length: ok.length }, (_, i) => i + 1));

    // The history holds exactly what each writer was told it wrote; the current config, MongoDB's and Redis's, is the last.
    const told = new Map(ok.map((r) => [r.body.version as number, r.body.instructions as string]));
    expect(await history('race-reg')).to.deep.equal([...told].sort((a, b) => b[0] - a[0]));
    const current = (await api.call('GET', '/api/agents/race-reg')).body;
    expect(current).to.include({ version: ok.length, instructions: told.get(ok.length) });
    expect((await cached('race-reg')).config).to.deep.equal(current);
  });

  it('when identical registers of a new id race, then there is one version, one 201 and the rest 200', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => register('same-reg')));
    expect(results.map((r) => r.status).sort()).to.deep.equal([200, 200, 200, 200, 200, 200, 200, 201]);
    expect(results.every((r) => r.body.version === 1)).to.equal(true);
    expect(await history('same-reg')).to.have.length(1);
  });

  it('when the Redis entry lags MongoDB, then a register neither reuses a version nor takes the stale entry for the current config', async () => {
    await register('lag', { instructions: 'A' });
    const stale = (await redis.get(configKey(api.env.QUEUE_PREFIX!, 'lag')))!;
    await register('lag', { instructions: 'B' });
    const lagBehind = () => redis.set(configKey(api.env.QUEUE_PREFIX!, 'lag'), stale, 'EX', 300);

    // The stale entry says A is current; MongoDB says B: A is a change.
    await lagBehind();
    const backToA = await register('lag', { instructions: 'A' });
    expect(backToA.status).to.equal(200);
    expect(backToA.body).to.include({ version: 3, instructions: 'A' });

    await lagBehind();
    const c = await register('lag', { instructions: 'C' });
    expect(c.body).to.include({ version: 4, instructions: 'C' });

    // The stale entry says A; MongoDB already holds C: nothing changes.
    await lagBehind();
    const again = await register('lag', { instructions: 'C' });
    expect(again.status).to.equal(200);
    expect(again.body.version).to.equal(4);

    expect(await history('lag')).to.deep.equal([
      [4, 'C'],
      [3, 'A'],
      [2, 'B'],
      [1, 'A'],
    ]);
    expect((await api.call('GET', '/api/agents/lag')).body).to.include({ version: 4, instructions: 'C' });
  });

  it('when a write died after claiming its version, then the next register rolls it forward and writes the one after', async () => {
    await register('died', { instructions: 'first' });
    // A version row whose write never moved `agents` on: by its compound _id, then one of the older kind (an ObjectId).
    const row = (version: number, instructions: string) => ({
      agentId: 'died',
      version,
      spec: agentConfigInput.parse(agentBody('died', { instructions })),
      deleted: false,
      createdAt: new Date(),
    });
    await models.agentVersions.insertOne({ _id: versionId('died', 2), ...row(2, 'claimed') });
    const next = await register('died', { instructions: 'next' });
    expect(next.status).to.equal(200);
    expect(next.body).to.include({ version: 3, instructions: 'next' });

    await conn.collection('agent_versions').insertOne(row(4, 'claimed before compound ids'));
    const after = await register('died', { instructions: 'after' });
    expect(after.body).to.include({ version: 5, instructions: 'after' });
    expect((await api.call('GET', '/api/agents/died/versions/4')).body.config.instructions).to.equal('claimed before compound ids');

    expect(await history('died')).to.deep.equal([
      [5, 'after'],
      [4, 'claimed before compound ids'],
      [3, 'next'],
      [2, 'claimed'],
      [1, 'first'],
    ]);
    expect(await models.AgentVersion.countDocuments({ agentId: 'died' })).to.equal(5);
  });

  it('when an agent was deleted, then registering it again is a 201 whatever the cache holds, and its createdAt is new', async () => {
    const first = await register('reborn');
    await api.call('DELETE', '/api/agents/reborn');
    // The entry now says "missing at version 2"; an entry that expired must give the same answer.
    for (const dropEntry of [false, true]) {
      if (dropEntry) {
        await api.call('DELETE', '/api/agents/reborn');
        await redis.del(configKey(api.env.QUEUE_PREFIX!, 'reborn'));
      }
      const again = await register('reborn', { instructions: `again ${dropEntry}` });
      expect(again.status).to.equal(201);
      expect(Date.parse(again.body.createdAt)).to.be.greaterThan(Date.parse(first.body.createdAt));
      expect(again.body.createdAt).to.equal(again.body.updatedAt);
    }
    expect((await history('reborn')).map(([v]) => v)).to.deep.equal([5, 4, 3, 2, 1]);
  });
});
