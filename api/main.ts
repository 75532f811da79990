import { runService } from '../common/run-service.js';
import { startApi } from './server.js';

await runService(() => startApi(), 10_000);
