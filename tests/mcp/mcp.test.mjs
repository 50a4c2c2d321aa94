// forkd's MCP server (`forkd mcp`, sdk/python/forkd/mcp.py) driven by the
// official MCP client (@modelcontextprotocol/sdk, pinned in package.json)
// over stdio, against a real daemon:
//   - FORKD_URL (+ FORKD_TOKEN, FORKD_TAG, FORKD_SPAWN_ARGS): an existing daemon
//     whose snapshot runs forkd's agent (tests/e2e/image_fork.sh, real image);
//   - otherwise stub_daemon.py starts one from $FORKD_BUILD (default build/)
//     with a snapshot of agent_stub, which answers ping only.
//
//   npm ci --prefix tests/mcp && node --test tests/mcp/
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const forkd = path.join(process.env.FORKD_BUILD || path.join(repo, 'build'), 'forkd');
const TOOLS = ['sandbox_create', 'sandbox_list', 'sandbox_kill', 'run_python', 'run_command',
  'read_file', 'write_file', 'list_dir', 'remove_file', 'sandbox_branch'];
const LONG = { timeout: 600_000 }; // a spawn or branch of the real image on KVM-PVM is slow

let target = null; // {url, token, tag, real, spawnArgs}
let skip = null;
let stub = null;

before(async () => {
  if (process.env.FORKD_URL) {
    const spawnArgs = JSON.parse(process.env.FORKD_SPAWN_ARGS || '{}');
    target = { url: process.env.FORKD_URL, token: process.env.FORKD_TOKEN || '',
      tag: process.env.FORKD_TAG || 'py', real: true, spawnArgs };
    return;
  }
  stub = spawn(process.env.FORKD_PYTHON || 'python3', [path.join(here, 'stub_daemon.py')],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: stub.stdout });
  const [line] = await Promise.race([once(lines, 'line'),
    once(stub, 'exit').then(([rc]) => { throw new Error(`stub_daemon.py exited ${rc}`); })]);
  const o = JSON.parse(line);
  if (o.skip) skip = o.skip;
  else target = { ...o, real: false, spawnArgs: {} };
});

after(async () => {
  if (stub) {
    stub.stdin.end();
    const [rc] = stub.exitCode === null ? await once(stub, 'exit') : [stub.exitCode];
    assert.equal(rc, 0, 'stub_daemon.py: the daemon did not stop cleanly');
  }
});

async function connect() {
  const transport = new StdioClientTransport({
    command: forkd,
    args: ['mcp', '--daemon-url', target.url, '--tag', target.tag],
    env: { ...process.env, FORKD_TOKEN: target.token },
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr.on('data', (d) => { stderr += d; });
  const client = new Client({ name: 'forkd-mcp-test', version: '0.0.0' });
  await client.connect(transport);
  client.serverStderr = () => stderr;
  return client;
}

async function rest(method, p, body) {
  const r = await fetch(target.url + p, {
    method,
    headers: { Authorization: 'Bearer ' + target.token,
      ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

// A tool call that must succeed: its structuredContent, checked against the text.
async function ok(client, name, args) {
  const r = await client.callTool({ name, arguments: args }, undefined, LONG);
  assert.equal(r.isError, false,
    `${name}: ${JSON.stringify(r.content)}\nserver stderr: ${client.serverStderr()}`);
  assert.deepEqual(JSON.parse(r.content[0].text), r.structuredContent);
  return r.structuredContent;
}

// A tool call that must fail as a tool (isError): its message.
async function fails(client, name, args) {
  const r = await client.callTool({ name, arguments: args }, undefined, LONG);
  assert.equal(r.isError, true, `${name} should fail: ${JSON.stringify(r)}`);
  assert.equal(r.content[0].type, 'text');
  return r.content[0].text;
}

// A call that must be a JSON-RPC error (McpError) with this code.
async function rejects(client, name, args, code, pattern) {
  await assert.rejects(client.callTool({ name, arguments: args }), (e) => {
    assert.ok(e instanceof McpError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

function create(client, extra = {}) {
  return ok(client, 'sandbox_create', { ...target.spawnArgs, ...extra });
}

describe('forkd mcp', () => {
  let client;
  before(async () => { if (target) client = await connect(); });
  after(async () => { if (client) await client.close(); });

  test('initialize: server info and tools capability', (t) => {
    if (skip) return t.skip(skip);
    const info = client.getServerVersion();
    assert.equal(info.name, 'forkd');
    assert.match(info.version, /^\d+\.\d+\.\d+/);
    assert.ok(client.getServerCapabilities().tools);
    assert.match(client.getInstructions(), /sandbox_create/);
  });

  test('tools/list: every tool, each with an object schema', async (t) => {
    if (skip) return t.skip(skip);
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((x) => x.name).sort(), [...TOOLS].sort());
    for (const tool of tools) {
      const s = tool.inputSchema;
      assert.equal(s.type, 'object', tool.name);
      assert.equal(s.additionalProperties, false, tool.name);
      assert.ok(Array.isArray(s.required), tool.name);
      for (const r of s.required) assert.ok(s.properties[r], `${tool.name}.${r}`);
      assert.ok(tool.description.length > 20, tool.name);
      if (!['sandbox_create', 'sandbox_list'].includes(tool.name))
        assert.ok(s.required.includes('sandbox_id'), tool.name);
    }
    const byName = Object.fromEntries(tools.map((x) => [x.name, x.inputSchema]));
    assert.deepEqual(byName.run_python.required, ['sandbox_id', 'code']);
    assert.deepEqual(byName.sandbox_branch.properties.mode.enum, ['live', 'full', 'diff']);
    assert.equal(byName.run_command.properties.timeout_secs.maximum, 3600);
  });

  test('protocol errors: unknown tool, bad arguments', async (t) => {
    if (skip) return t.skip(skip);
    await rejects(client, 'no_such_tool', {}, -32602, /unknown tool/);
    await rejects(client, 'run_python', { sandbox_id: 'nope', code: '1' }, -32602,
      /arguments\.sandbox_id/);
    await rejects(client, 'run_python', { sandbox_id: 'sb-aaaaaaaaaaaaaaaaaaaa' }, -32602,
      /missing required 'code'/);
    await rejects(client, 'sandbox_create', { tag: 'py', bogus: true }, -32602,
      /unknown property 'bogus'/);
    await rejects(client, 'run_command', { sandbox_id: 'sb-aaaaaaaaaaaaaaaaaaaa' }, -32602,
      /exactly one of command/);
    // The session goes on after them.
    await client.ping();
  });

  test('an unknown sandbox is a tool error', async (t) => {
    if (skip) return t.skip(skip);
    const msg = await fails(client, 'sandbox_kill', { sandbox_id: 'sb-aaaaaaaaaaaaaaaaaaaa' });
    assert.match(msg, /404|no such|not found/i);
  });

  test('agent_stub: create, list, branch, kill; run_python refused', async (t) => {
    if (skip) return t.skip(skip);
    if (target.real) return t.skip('the real agent runs everything (next test)');
    const made = await create(client);
    const id = made.sandbox_id;
    assert.match(id, /^sb-[a-z2-7]{20}$/);
    assert.equal(made.info.snapshot_tag, target.tag);
    const { sandboxes } = await ok(client, 'sandbox_list', {});
    const mine = sandboxes.find((s) => s.id === id);
    assert.equal(mine.created_by_this_session, true);
    assert.equal(mine.state, 'running');
    assert.match(await fails(client, 'run_python', { sandbox_id: id, code: '1+1' }),
      /op not supported/);
    assert.match(await fails(client, 'run_command', { sandbox_id: id, command: 'true' }),
      /op not supported/);
    const branch = await ok(client, 'sandbox_branch', { sandbox_id: id, mode: 'full' });
    assert.equal(branch.snapshot.mode, 'full');
    const child = await create(client, { tag: branch.tag });
    assert.equal(child.info.snapshot_tag, branch.tag);
    await ok(client, 'sandbox_kill', { sandbox_id: child.sandbox_id });
    assert.equal((await rest('DELETE', '/v1/snapshots/' + branch.tag)).status, 200);
    assert.deepEqual(await ok(client, 'sandbox_kill', { sandbox_id: id }),
      { sandbox_id: id, killed: true });
    assert.equal((await rest('GET', '/v1/sandboxes/' + id)).status, 404);
  });

  test('real agent: python, commands, files, branch', async (t) => {
    if (skip) return t.skip(skip);
    if (!target.real) return t.skip('needs the real agent (FORKD_URL)');
    const id = (await create(client)).sandbox_id;
    const py = (code) => ok(client, 'run_python', { sandbox_id: id, code });
    assert.equal((await py('1+1')).result, '2');
    assert.match((await py('import numpy; numpy.__version__')).result, /^'\d+\./);
    const printed = await py('print("out"); x = 41');
    assert.equal(printed.stdout, 'out\n');
    assert.equal(printed.result, null);
    assert.match(await fails(client, 'run_python', { sandbox_id: id, code: '1/0' }),
      /ZeroDivisionError/);

    const sh = await ok(client, 'run_command',
      { sandbox_id: id, command: 'echo hello; echo err >&2; exit 3', timeout_secs: 30 });
    assert.deepEqual([sh.stdout, sh.stderr, sh.exit_code, sh.timed_out],
      ['hello\n', 'err\n', 3, false]);
    const argv = await ok(client, 'run_command',
      { sandbox_id: id, argv: ['sh', '-c', 'echo "$A" && pwd'], cwd: '/tmp', env: { A: 'a' } });
    assert.equal(argv.stdout, 'a\n/tmp\n');

    const dir = '/tmp/mcp-test';
    await ok(client, 'run_command', { sandbox_id: id, argv: ['mkdir', '-p', dir] });
    const w = await ok(client, 'write_file',
      { sandbox_id: id, path: `${dir}/t.txt`, content: 'héllo\n' });
    assert.equal(w.bytes, 7);
    assert.deepEqual(await ok(client, 'read_file', { sandbox_id: id, path: `${dir}/t.txt` }),
      { path: `${dir}/t.txt`, size: 7, base64: false, content: 'héllo\n' });
    await ok(client, 'write_file',
      { sandbox_id: id, path: `${dir}/b.bin`, content: 'AP+AAQ==', base64: true, mode: '600' });
    assert.deepEqual(await ok(client, 'read_file', { sandbox_id: id, path: `${dir}/b.bin` }),
      { path: `${dir}/b.bin`, size: 4, base64: true, content: 'AP+AAQ==' });
    assert.equal((await py(`open('${dir}/t.txt').read()`)).result, "'héllo\\n'");
    const listing = await ok(client, 'list_dir', { sandbox_id: id, path: dir });
    assert.deepEqual(listing.entries.map((e) => [e.name, e.type, e.size]),
      [['b.bin', 'file', 4], ['t.txt', 'file', 7]]);
    assert.equal(listing.entries[0].mode, 0o600);
    await ok(client, 'remove_file', { sandbox_id: id, path: `${dir}/t.txt` });
    assert.match(await fails(client, 'read_file', { sandbox_id: id, path: `${dir}/t.txt` }),
      /No such file/);
    assert.match(await fails(client, 'remove_file', { sandbox_id: id, path: dir }),
      /not empty|Directory not empty/i);
    await ok(client, 'remove_file', { sandbox_id: id, path: dir, recursive: true });
    assert.match(await fails(client, 'list_dir', { sandbox_id: id, path: dir }), /No such/);

    const branch = await ok(client, 'sandbox_branch', { sandbox_id: id });
    assert.match(branch.tag, /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/);
    const child = (await create(client, { tag: branch.tag })).sandbox_id;
    assert.equal((await ok(client, 'run_python', { sandbox_id: child, code: 'x + 1' })).result,
      '42');
    await ok(client, 'sandbox_kill', { sandbox_id: child });
    await ok(client, 'sandbox_kill', { sandbox_id: id });
    assert.equal((await rest('DELETE', '/v1/snapshots/' + branch.tag)).status, 200);
  });
});

describe('forkd mcp session', () => {
  test('closing the session kills its sandboxes, and only those', LONG, async (t) => {
    if (skip) return t.skip(skip);
    const other = await rest('POST', '/v1/sandboxes',
      { snapshot_tag: target.tag, n: 1, ...target.spawnArgs });
    assert.equal(other.status, 201, JSON.stringify(other.body));
    const otherId = other.body[0].id;
    try {
      const client = await connect();
      const a = (await create(client)).sandbox_id;
      const b = (await create(client)).sandbox_id;
      const listed = (await ok(client, 'sandbox_list', {})).sandboxes;
      assert.equal(listed.find((s) => s.id === otherId).created_by_this_session, false);
      let running = (await rest('GET', '/v1/sandboxes')).body.map((s) => s.id);
      assert.ok(running.includes(a) && running.includes(b));
      // The client closes stdin, and SIGTERMs then SIGKILLs a server still
      // there after 2 s each: the kills were sent by then, so the daemon
      // finishes them even if the server did not (real sandboxes in the lab).
      await client.close();
      let now;
      for (let i = 0; i < 60; i++) {
        now = (await rest('GET', '/v1/sandboxes')).body;
        if (!now.some((s) => s.id === a || s.id === b)) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      running = now.filter((s) => s.state === 'running').map((s) => s.id);
      assert.ok(!now.some((s) => s.id === a || s.id === b), JSON.stringify(now));
      assert.ok(running.includes(otherId), 'a sandbox the session did not create was killed');
    } finally {
      await rest('DELETE', '/v1/sandboxes/' + otherId);
    }
  });
});
