import { expect } from 'chai';
import { Queue, Worker } from 'bullmq';
import { Schema } from 'mongoose';
import { connectMongo, type Connection } from '../../common/mongo.js';
import { createRedis } from '../../common/redis.js';
import { livekitClients } from '../../common/livekit.js';
import { stack, uniqueName } from '../support/env.js';

describe('the real services of the local stack', () => {
  describe('MongoDB-compatible server through mongoose', () => {
    let conn: Connection;
    before(async () => {
      conn = await connectMongo(stack.MONGODB_URI, uniqueName('foundation'));
    });
    after(async () => {
      await conn.dropDatabase();
      await conn.close();
    });

    it('inserts, reports a unique-index violation as such, and finds', async () => {
      const Thing = conn.model('Thing', new Schema({ key: { type: String, unique: true }, n: Number }));
      await Thing.init();
      await Thing.create({ key: 'a', n: 1 });
      let dup: { code?: number } | undefined;
      try {
        await Thing.create({ key: 'a', n: 2 });
      } catch (e) {
        dup = e as { code?: number };
      }
      expect(dup?.code).to.equal(11000);
      const found = await Thing.find({ key: 'a' }).lean();
      expect(found).to.have.length(1);
      expect(found[0]?.n).to.equal(1);
    });
  });

  describe('BullMQ on Redis', () => {
    it('a job added to a queue is processed by a worker with its data', async () => {
      const name = uniqueName('foundation');
      const queue = new Queue(name, { connection: createRedis(stack.REDIS_URL, 'fail-fast'), prefix: 'test' });
      const seen: unknown[] = [];
      const worker = new Worker(
        name,
        async (job) => {
          seen.push(job.data);
          return { doubled: (job.data as { n: number }).n * 2 };
        },
        { connection: createRedis(stack.REDIS_URL, 'blocking'), prefix: 'test' },
      );
      try {
        const done = new Promise<unknown>((resolve) => worker.on('completed', (_job, result) => resolve(result)));
        await queue.add('round-trip', { n: 21 }, { jobId: 'only-once' });
        await queue.add('round-trip', { n: 99 }, { jobId: 'only-once' }); // same id: not added again
        expect(await done).to.deep.equal({ doubled: 42 });
        expect(seen).to.deep.equal([{ n: 21 }]);
      } finally {
        await worker.close();
        await queue.obliterate({ force: true });
        await queue.close();
      }
    });
  });

  describe('LiveKit server', () => {
    const { rooms, dispatch } = livekitClients(stack);

    it('creates, lists and deletes a room', async () => {
      const name = uniqueName('foundation-room');
      const created = await rooms.createRoom({ name, emptyTimeout: 60 });
      expect(created.name).to.equal(name);
      expect((await rooms.listRooms([name])).map((r) => r.name)).to.deep.equal([name]);
      await rooms.deleteRoom(name);
      expect(await rooms.listRooms([name])).to.deep.equal([]);
    });

    it('creates an explicit agent dispatch whose JSON metadata lists back unchanged', async () => {
      const room = uniqueName('foundation-dispatch');
      const metadata = JSON.stringify({ agentId: '123', sessionId: 's-1' });
      const d = await dispatch.createDispatch(room, 'agent-runtime-test', { metadata });
      try {
        // A new room also carries LiveKit's default dispatch (agentName ''), for automatically dispatched agents.
        const listed = (await dispatch.listDispatch(room)).filter((x) => x.agentName !== '');
        expect(listed).to.have.length(1);
        expect(listed[0]?.id).to.equal(d.id);
        expect(listed[0]?.agentName).to.equal('agent-runtime-test');
        expect(JSON.parse(listed[0]!.metadata)).to.deep.equal({ agentId: '123', sessionId: 's-1' });
      } finally {
        await rooms.deleteRoom(room).catch(() => undefined);
      }
    });
  });
});
