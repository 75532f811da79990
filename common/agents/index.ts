/**
 * Agents, the public face: the config contract (zod schema, id pattern), its
 * MongoDB models (the current version and every version kept) and the store
 * that owns their queries, the view the API returns, and the resolver every
 * service reads configs through (LRU, then Redis, then MongoDB; the current
 * config or a pinned version) with its cache keys. Code outside this folder
 * imports from here.
 */
export * from './schema.js';
export * from './model.js';
export * from './store.js';
export * from './view.js';
export * from './resolver.js';
export * from './resolver-factory.js';
