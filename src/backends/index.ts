import { ErrorCode, RouterError } from '../errors.js'
import type { BackendKind } from '../types.js'
import { hostedGenerateAdapter } from './hosted.js'
import { ollamaAdapter } from './ollama.js'
import { openaiAdapter } from './openai.js'
import type { BackendAdapter } from './types.js'

export { errorMessage } from './common.js'
export { OLLAMA_RESERVED_FIELDS, OLLAMA_TOP_LEVEL_FIELDS, ollamaAdapter } from './ollama.js'
export { OPENAI_RESERVED_FIELDS, openaiAdapter } from './openai.js'
export type { BackendAdapter, BackendOutput, StreamDecoder, WireRequest } from './types.js'

const ADAPTERS: Readonly<Record<BackendKind, BackendAdapter>> = {
  ollama: ollamaAdapter,
  mlx: openaiAdapter,
  openai: hostedGenerateAdapter,
}

/**
 * The generation adapter for a backend kind: `ollama` -> `/api/generate`, `mlx` -> `/v1/completions`,
 * `openai` (hosted) -> `/chat/completions` under its versioned base URL.
 */
export function adapterFor(kind: BackendKind): BackendAdapter {
  const adapter = ADAPTERS[kind]
  if (adapter === undefined || !Object.hasOwn(ADAPTERS, kind)) {
    throw new RouterError(
      ErrorCode.CONFIG_INVALID,
      `Unknown backend kind ${JSON.stringify(kind)}; use "ollama", "mlx" or "openai"`,
    )
  }
  return adapter
}
