#!/usr/bin/env node
// `npx agent-runtime …`: the CLI is TypeScript; tsx compiles it on the fly, as for the services.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
