/**
 * `npx agent-runtime …`: the API from a terminal. Errors are one line on
 * stderr and a non-zero exit; --json prints what the API answered.
 */
import { Command, InvalidArgumentError } from 'commander';
import { ApiProblem, Client, DEV_KEY, DEV_URL } from './client.js';
import * as commands from './commands.js';
import type { Output } from './commands.js';

const program = new Command('agent-runtime')
  .description('Agent Runtime from the command line: agents, sessions and batches')
  .option('--url <url>', 'API URL (env AGENT_RUNTIME_URL)', process.env.AGENT_RUNTIME_URL || DEV_URL)
  .option('--key <key>', 'API key (env AGENT_RUNTIME_KEY)', process.env.AGENT_RUNTIME_KEY || DEV_KEY)
  .option('--json', 'print the API\'s JSON instead of lines for people', false)
  .showHelpAfterError();

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return n;
}

/** Runs a command with the global options resolved; turns every failure into one line and exit 1. */
function run<A extends unknown[]>(fn: (api: Client, out: Output, ...args: A) => Promise<unknown>) {
  return async (...args: A) => {
    const o = program.opts<{ url: string; key: string; json: boolean }>();
    const out: Output = {
      json: o.json,
      result: (value, human) => process.stdout.write(`${o.json ? JSON.stringify(value, null, 2) : human()}\n`),
      note: (line) => process.stderr.write(`${line}\n`),
    };
    try {
      await fn(new Client({ url: o.url, key: o.key }), out, ...args);
    } catch (err) {
      process.stderr.write(`error: ${err instanceof ApiProblem || err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = err instanceof ApiProblem && err.status === 0 ? 2 : 1;
    }
  };
}

const agents = program.command('agents').description('the agent registry');
agents.command('register <file>').description('create or replace an agent from a JSON file').action(run((api, out, file: string) => commands.registerAgent(api, out, file)));
agents.command('list').description('every agent, at its current version').action(run((api, out) => commands.listAgents(api, out)));
agents
  .command('rollback <id> <version>')
  .description('make an old version current (as a new version)')
  .action(run((api, out, id: string, version: string) => commands.rollbackAgent(api, out, id, positiveInt(version))));

const sessions = program.command('sessions').description('session requests');
sessions
  .command('create')
  .description('ask for a session, or a batch of them with --count; a batch is followed until every session is past the queue')
  .requiredOption('--agent <id>', 'the agent')
  .option('--count <n>', 'how many sessions (a batch when more than 1)', positiveInt, 1)
  .option('--no-wait', 'for a batch: print its id and return at once')
  .action(run((api, out, opts: { agent: string; count: number; wait: boolean }) => commands.createSessions(api, out, opts.agent, opts.count, opts.wait)));
sessions.command('get <id>').description('one session, with its status').action(run((api, out, id: string) => commands.getSession(api, out, id)));
sessions
  .command('list')
  .description('sessions, newest first')
  .option('--agent <id>')
  .option('--status <status>')
  .option('--batch <id>')
  .option('--limit <n>')
  .action(run((api, out, q: { agent?: string; status?: string; batch?: string; limit?: string }) => commands.listSessions(api, out, q)));
sessions.command('cancel <id>').description('cancel a queued session, or end a running one').action(run((api, out, id: string) => commands.cancelSession(api, out, id)));

program
  .command('batches')
  .description('batches of sessions')
  .command('watch <id>')
  .description('follow a batch until every session is past the queue')
  .action(run((api, out, id: string) => commands.watchBatch(api, out, id)));

await program.parseAsync(process.argv);
