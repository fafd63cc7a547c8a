/**
 * A real redis-server for tests: its own temporary directory, no persistence, bound to 127.0.0.1 on
 * a free port, stopped by its PID. `restart()` brings it back on the same port (outage tests).
 * Tests that need it call `redisAvailable()` first: `.ci/run` installs redis-server when it is missing.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export function redisAvailable(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

export interface RedisServer {
  readonly port: number
  readonly url: string
  readonly pid: number | undefined
  /** Kills the server (SIGKILL: a crash, not a shutdown) and waits until it is gone. */
  kill(): Promise<void>
  /** Starts it again on the same port (after `kill()`). */
  restart(): Promise<void>
  /** Stops it and removes its directory. */
  stop(): Promise<void>
}

function launch(port: number, dir: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        '--daemonize',
        'no',
        '--loglevel',
        'warning',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let out = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`redis-server did not become ready on port ${port}: ${out}`))
    }, 10_000)
    const ready = () => {
      clearTimeout(timer)
      child.stdout?.removeAllListeners('data')
      resolve(child)
    }
    // With --loglevel warning the ready line is not printed; poll with a TCP connect instead.
    const poll = async () => {
      const { connect } = await import('node:net')
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => {
        socket.write('PING\r\n')
        socket.once('data', (data) => {
          socket.destroy()
          if (data.toString().startsWith('+PONG')) ready()
          else setTimeout(poll, 20)
        })
      })
      socket.once('error', () => {
        socket.destroy()
        if (child.exitCode === null) setTimeout(poll, 20)
      })
    }
    child.stdout?.on('data', (d) => {
      out += String(d)
    })
    child.stderr?.on('data', (d) => {
      out += String(d)
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`redis-server exited with ${code}: ${out}`))
    })
    void poll()
  })
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

export async function startRedis(): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'llm-router-redis-'))
  let port = 0
  let child: ChildProcess | null = null
  // A free port can be taken between the probe and redis' bind: try a few.
  for (let i = 0; i < 5 && child === null; i++) {
    port = await freePort()
    child = await launch(port, dir).catch(() => null)
  }
  if (child === null) throw new Error('could not start redis-server')
  let current: ChildProcess | null = child
  const kill = async () => {
    if (current === null) return
    const c = current
    current = null
    if (c.pid !== undefined) process.kill(c.pid, 'SIGKILL')
    await waitExit(c)
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return current?.pid
    },
    kill,
    async restart() {
      await kill()
      current = await launch(port, dir)
    },
    async stop() {
      await kill()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
