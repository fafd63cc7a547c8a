/**
 * Runs a script as a user would (`node <file>`, Node 24 from vitest's own process.execPath) with a
 * clean environment: the developer's LLM_ROUTER_ADMIN_URL / OLLAMA_HOST / MLX_HOST never leak in.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { root } from './build.js'

const ROUTER_ENV = /^(LLM_ROUTER_|OLLAMA_|MLX_|ADMIN_API_URL$|NO_COLOR$|FORCE_COLOR$)/

export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !ROUTER_ENV.test(k)) env[k] = v
  return { ...env, NO_COLOR: '1', ...extra }
}

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  ms: number
}

export function start(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, args, { cwd: root, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Runs to completion (killed after `timeoutMs`). */
export function run(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 20_000,
): Promise<RunResult> {
  const t0 = performance.now()
  const child = start(args, env)
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d
  })
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 })
    })
  })
}
