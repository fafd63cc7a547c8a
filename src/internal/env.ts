/** Environment access: one place that trims, treats empty as missing and never throws. */
export type Env = Readonly<Record<string, string | undefined>>

export function readEnv(env: Env, name: string): string | undefined {
  const value = env[name]
  if (value === undefined) return undefined
  const trimmed = value.trim()
  return trimmed === '' ? undefined : trimmed
}
