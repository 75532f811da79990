import os from 'node:os';
import type { WorkerConfig } from '../common/config.js';

/** A job process costs ~200 MiB built (~260 MiB under tsx); at full load the warm pool doubles the count. */
const MIB_PER_JOB = 440;
/** Left to the worker process itself, LiveKit's client libraries and the system. */
const RESERVED_MIB = 1024;
/** A voice session listening (local VAD, resampling, WebRTC) takes about 0.15-0.2 of a core, built: three share one with room to spare. */
const JOBS_PER_CORE = 3;

export interface Sizing {
  /** Job slots: the jobs this worker runs at once. */
  capacity: number;
  /** Job processes kept warm. */
  idleProcesses: number;
}

/** Memory this process may use: the cgroup limit where there is one, else the machine's. */
function memoryBytes(): number {
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  return constrained && constrained > 0 && constrained < os.totalmem() ? constrained : os.totalmem();
}

/**
 * The worker's job slots and warm processes: configured, or derived from the
 * machine (cores and memory). The warm pool defaults to the slot count, so a
 * burst that fills the worker finds a started process for every job instead
 * of waiting for processes that start one at a time.
 */
export function workerSizing(c: Pick<WorkerConfig, 'WORKER_MAX_JOBS' | 'WORKER_IDLE_PROCESSES'>, cores = os.availableParallelism(), memory = memoryBytes()): Sizing {
  const byCpu = cores * JOBS_PER_CORE;
  const byMemory = Math.floor((memory / 2 ** 20 - RESERVED_MIB) / MIB_PER_JOB);
  const capacity = c.WORKER_MAX_JOBS || Math.max(1, Math.min(byCpu, byMemory));
  return { capacity, idleProcesses: c.WORKER_IDLE_PROCESSES || Math.max(1, Math.min(capacity, 64)) };
}
