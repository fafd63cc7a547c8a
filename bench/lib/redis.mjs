// A redis-server for the Redis-store bench scenario (issue 14): a free 127.0.0.1 port, no persistence,
// its own directory; `commandCalls()` reads INFO commandstats, so the bench can report round trips per
// request. `startBenchRedis()` returns null when redis-server is not installed (the scenario is skipped).
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** Sends one inline command, resolves with the raw reply once `done(reply)` holds. */
function ask(port, command, done) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let reply = ''
    socket.setEncoding('utf8')
    socket.once('error', reject)
    socket.once('connect', () => socket.write(`${command}\r\n`))
    socket.on('data', (d) => {
      reply += d
      if (done(reply)) {
        socket.destroy()
        resolve(reply)
      }
    })
  })
}

export async function startBenchRedis() {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) return null
  const dir = mkdtempSync(join(tmpdir(), 'llm-router-bench-redis-'))
  const port = await freePort()
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  )
  for (let i = 0; ; i++) {
    const ok = await ask(port, 'PING', (r) => r.includes('\r\n')).then(
      (r) => r.startsWith('+PONG'),
      () => false,
    )
    if (ok) break
    if (i > 200) throw new Error('redis-server did not start')
    await new Promise((r) => setTimeout(r, 25))
  }
  return {
    port,
    /** Calls per command name so far (`evalsha: 12345`), from INFO commandstats. */
    async commandCalls() {
      const reply = await ask(port, 'INFO commandstats', (r) => {
        const m = /^\$(\d+)\r\n/.exec(r)
        return m !== null && Buffer.byteLength(r) >= m[0].length + Number(m[1]) + 2
      })
      const calls = {}
      for (const m of reply.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) calls[m[1]] = Number(m[2])
      return calls
    },
    stop() {
      child.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
