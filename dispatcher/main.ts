import { runService } from '../common/run-service.js';
import { startDispatcher } from './server.js';

// Stopping waits for active dispatches to finish.
await runService(() => startDispatcher(), 30_000);
