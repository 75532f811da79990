/**
 * With BENCH_CPU_PROFILE=<dir>, SIGUSR2 starts a V8 CPU profile of this
 * process and `write()` (called on SIGTERM) saves it there as
 * `<name>.cpuprofile`: a benchmark profiles its load window, not the start.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';

export function profileOnSignal(name: string): { write(): Promise<void> } {
  const dir = process.env.BENCH_CPU_PROFILE;
  let session: Session | undefined;
  if (dir) {
    process.on('SIGUSR2', async () => {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    });
  }
  return {
    async write() {
      if (!session || !dir) return;
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(path.join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    },
  };
}
