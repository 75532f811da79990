/**
 * Sessions, the public face: the request and job contracts (schema.ts), the
 * state table (state.ts), the store (running sessions in Redis, their history
 * in MongoDB: store.ts, hot-records.ts, history-writer.ts, model.ts), what a
 * move sets off (effects.ts), placements and agent slots, dispatch metadata,
 * ids and the conversation memory. Code outside this folder imports from here.
 */
export * from './schema.js';
export * from './state.js';
export * from './ids.js';
export * from './attributes.js';
export * from './dispatch-metadata.js';
export * from './model.js';
export * from './hot-records.js';
export * from './history-writer.js';
export * from './store.js';
export * from './effects.js';
export * from './placement.js';
export * from './agent-slots.js';
export * from './turns.js';
