/**
 * A second process holding its own resolver, driven over stdin/stdout:
 * each line in is an agent id, each line out the JSON of its resolution.
 */
import readline from 'node:readline';
import { agentModels, AgentResolver } from '../../common/agents/index.js';
import { connectMongo } from '../../common/mongo.js';
import { createRedis } from '../../common/redis.js';

const [mongoUri, redisUrl, prefix] = process.argv.slice(2) as [string, string, string];
const conn = await connectMongo(mongoUri);
const resolver = new AgentResolver({
  redis: createRedis(redisUrl),
  subscriber: createRedis(redisUrl, 'blocking'),
  models: await agentModels(conn),
  prefix,
});
await resolver.start();
process.stdout.write('ready\n');
for await (const id of readline.createInterface({ input: process.stdin })) {
  try {
    const r = await resolver.resolve(id);
    process.stdout.write(`${JSON.stringify({ version: r.config.version, tier: r.tier })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ error: (err as Error).name })}\n`);
  }
}
process.exit(0);
