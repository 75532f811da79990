import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** Repository root, wherever the checkout lives. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Git-ignored state of the local stack: logs, pid files, data. */
export const CACHE_DIR = path.resolve(process.env.AGENT_RUNTIME_CACHE ?? path.join(ROOT, '.cache'));

/**
 * Built binaries. Kept apart from CACHE_DIR so a machine can share them between
 * checkouts (CI points it outside the clone).
 */
export const BIN_DIR = path.resolve(process.env.AGENT_RUNTIME_BIN ?? path.join(CACHE_DIR, 'bin'));

export const LOG_DIR = path.join(CACHE_DIR, 'logs');
export const RUN_DIR = path.join(CACHE_DIR, 'run');

/** What tests leave for people to look at (screenshots, recordings): git-ignored. */
export const TEST_OUTPUT_DIR = path.join(CACHE_DIR, 'test-output');
