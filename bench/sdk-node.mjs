// bench/sdk's Node side: times one op on one sandbox through the TypeScript
// SDK (sdk/typescript, built) or through `forkd mcp` driven by the official
// MCP client (tests/mcp/node_modules), and prints {"ms": [...]} (one entry
// per timed repetition) on stdout. Not meant to be run by hand:
//
//   node bench/sdk-node.mjs ts|mcp URL SANDBOX OP REPS WARMUP [FORKD_BIN]
//
// The token comes in $FORKD_TOKEN. OP: ping | eval | exec (MCP has no ping
// of a sandbox: bench/sdk does not ask for it).
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const [via, url, sandbox, op, repsArg, warmupArg, forkdBin] = process.argv.slice(2);
const reps = Number(repsArg), warmup = Number(warmupArg);

async function timeLoop(call) {
  for (let i = 0; i < warmup; i++) await call();
  const ms = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    await call();
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return ms;
}

async function viaTs() {
  const { Controller, Sandbox } = await import(pathToFileURL(path.join(repo, 'sdk/typescript/dist/src/index.js')).href);
  const ctl = new Controller(url, { token: process.env.FORKD_TOKEN ?? '' });
  const sb = await Sandbox.connect(sandbox, { controller: ctl });
  const calls = {
    ping: () => sb.ping(),
    eval: () => sb.eval('1+1'),
    exec: () => sb.commands.run(['true']),
  };
  try {
    return await timeLoop(calls[op]);
  } finally {
    ctl.close();
  }
}

async function viaMcp() {
  const sdk = path.join(repo, 'tests/mcp/node_modules/@modelcontextprotocol/sdk/dist/esm/client');
  const { Client } = await import(pathToFileURL(path.join(sdk, 'index.js')).href);
  const { StdioClientTransport } = await import(pathToFileURL(path.join(sdk, 'stdio.js')).href);
  const transport = new StdioClientTransport({
    command: forkdBin,
    args: ['mcp', '--daemon-url', url],
    env: { ...process.env },
    stderr: 'inherit',
  });
  const client = new Client({ name: 'forkd-bench-sdk', version: '0.0.0' });
  await client.connect(transport);
  const tools = {
    eval: { name: 'run_python', arguments: { sandbox_id: sandbox, code: '1+1' } },
    exec: { name: 'run_command', arguments: { sandbox_id: sandbox, argv: ['true'] } },
  };
  if (!tools[op]) throw new Error(`no MCP tool for ${op}`);
  try {
    return await timeLoop(async () => {
      const r = await client.callTool(tools[op]);
      if (r.isError) throw new Error(`${tools[op].name}: ${r.content?.[0]?.text}`);
    });
  } finally {
    await client.close();
  }
}

try {
  const ms = via === 'ts' ? await viaTs() : await viaMcp();
  process.stdout.write(JSON.stringify({ ms }) + '\n');
} catch (e) {
  process.stderr.write(`bench/sdk (${via}): ${e.message}\n`);
  process.exit(1);
}
