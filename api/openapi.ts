import { z } from 'zod';
import { agentConfigInput, agentConfigPatch, rollbackBody } from '../common/agents/index.js';
import { batchRequestSchema, sessionRequestSchema, tokenRequestSchema } from '../common/sessions/index.js';

/**
 * The API description, generated from the same zod schemas that validate the
 * requests: GET /openapi.json. Nothing here restates a field.
 */
function schema(s: z.ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

const json = (ref: string) => ({ content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } } });
const problem = { description: 'problem details (RFC 9457)', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } };
const errors = { 400: problem, 401: problem, 404: problem, 409: problem, 413: problem, 415: problem, 429: problem, 503: problem };
const op = (summary: string, body?: string, ok: Record<string, unknown> = { 200: { description: 'OK' } }, bodyRequired = true) => ({
  summary,
  ...(body ? { requestBody: { required: bodyRequired, ...json(body) } } : {}),
  responses: { ...ok, ...errors },
  security: [{ bearer: [] }],
});
const idParam = (name: string) => ({ name, in: 'path', required: true, schema: { type: 'string' } });

export function openApiDocument() {
  const batch = schema(batchRequestSchema) as { anyOf: Record<string, unknown>[] };
  // Items are validated one by one (to name the bad index); describe them as session requests.
  (batch.anyOf[0] as { properties: { sessions: Record<string, unknown> } }).properties.sessions.items = { $ref: '#/components/schemas/SessionRequest' };
  return {
    openapi: '3.1.0',
    info: { title: 'Agent Runtime API', version: '1' },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        AgentConfig: schema(agentConfigInput),
        AgentConfigPatch: schema(agentConfigPatch),
        Rollback: schema(rollbackBody),
        SessionRequest: schema(sessionRequestSchema),
        BatchRequest: batch,
        TokenRequest: schema(tokenRequestSchema),
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'detail'],
          properties: {
            type: { type: 'string' },
            title: { type: 'string' },
            status: { type: 'integer' },
            detail: { type: 'string' },
            errors: { type: 'array', items: { type: 'object', properties: { field: { type: 'string' }, message: { type: 'string' } } } },
          },
        },
      },
    },
    paths: {
      '/api/agents/register': { post: op('Create or replace an agent (201 created, 200 updated); `warnings` when no running worker can serve its providers', 'AgentConfig', { 200: { description: 'updated' }, 201: { description: 'created' } }) },
      '/api/agents': { get: { ...op('List agents'), parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer' } }, { name: 'cursor', in: 'query', schema: { type: 'string' } }] } },
      '/api/agents/{id}': {
        parameters: [idParam('id')],
        get: op('Read an agent'),
        patch: op('Change an agent (JSON merge patch, validated as a whole)', 'AgentConfigPatch'),
        delete: op('Delete an agent (new sessions are refused)', undefined, { 204: { description: 'deleted' } }),
      },
      '/api/agents/{id}/versions': { parameters: [idParam('id')], get: op('Every version of an agent') },
      '/api/agents/{id}/versions/{version}': { parameters: [idParam('id'), idParam('version')], get: op('One version of an agent') },
      '/api/agents/{id}/rollback': { parameters: [idParam('id')], post: op('Make an old version current, as a new version', 'Rollback') },
      '/api/sessions': {
        post: { ...op('Ask for a session (queued durably, 202)', 'SessionRequest', { 202: { description: 'queued' } }), parameters: [{ name: 'Idempotency-Key', in: 'header', schema: { type: 'string' } }] },
        get: op('List sessions (agentId, status, batchId, source: api | automatic, limit, cursor)'),
      },
      '/api/sessions/batch': {
        post: op('Ask for up to 10,000 sessions at once; with `tokens`, a join token for each (`livekitUrl`, `sessions`)', 'BatchRequest', { 202: { description: 'queued' } }),
      },
      '/api/sessions/{id}': { parameters: [idParam('id')], get: op('A session, with every transition'), delete: op('Cancel or end a session') },
      '/api/sessions/{id}/token': {
        parameters: [idParam('id')],
        post: {
          ...op(
            'A join token for the room of a session that is not over (409 once it is): {sessionId, roomName, livekitUrl, participantToken}',
            'TokenRequest',
            { 200: { description: 'the token' } },
            false,
          ),
          parameters: [{ name: 'Idempotency-Key', in: 'header', schema: { type: 'string' } }],
        },
      },
      '/api/batches/{id}': { parameters: [idParam('id')], get: op('Counts per status and done'), delete: op('Cancel what is not dispatched') },
      '/api/batches/{id}/events': { parameters: [idParam('id')], get: op('Progress as server-sent events') },
      '/api/metrics': { get: op('Summary for Agent-Dashboard') },
    },
  };
}
