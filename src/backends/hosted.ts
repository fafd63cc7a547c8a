/**
 * Hosted OpenAI-compatible APIs (`backend_type: 'openai'`, backend kind `openai`): the OpenAI chat
 * protocol of openai-chat.ts, with two differences from a local server.
 * - Paths: the record's base URL already carries the API version, as OpenAI's SDKs expect
 *   (`https://api.openai.com/v1`, Gemini's `.../v1beta/openai`), so the paths have no `/v1` of their own.
 * - `generate()`/`stream()`: hosted APIs serve chat models through `/chat/completions` only (OpenAI,
 *   Groq, Mistral and Gemini have no `/completions` for them), so the prompt goes as a user message and
 *   `system` as a system message, through the chat adapter; the answer's text is the generation.
 */
import type { ChatMessage } from '../chat/types.js'
import type { ChatAdapter, ChatWire } from './chat-common.js'
import type { EmbedAdapter } from './embed-types.js'
import { openaiChatAdapter } from './openai-chat.js'
import { openaiEmbedAdapter } from './openai-embed.js'
import type { BackendAdapter, WireRequest } from './types.js'

function toChat(request: WireRequest): ChatWire {
  const messages: ChatMessage[] = []
  if (request.system !== undefined && request.system.length > 0) {
    messages.push({ role: 'system', content: request.system })
  }
  messages.push({ role: 'user', content: request.prompt })
  const wire: ChatWire = { messages, stream: request.stream }
  if (request.model !== undefined) wire.model = request.model
  if (request.maxTokens !== undefined) wire.maxTokens = request.maxTokens
  if (request.temperature !== undefined) wire.temperature = request.temperature
  if (request.stop !== undefined) wire.stop = request.stop
  if (request.options !== undefined) wire.extras = request.options
  return wire
}

/** The adapter's path under a base URL that already ends in the API version (`/v1/chat/completions` -> `/chat/completions`). */
export function unversioned(path: string): string {
  return path.replace(/^\/v1(?=\/)/, '')
}

/** `chat()`/`streamChat()` on a hosted API. */
export const hostedChatAdapter: ChatAdapter = {
  ...openaiChatAdapter,
  kind: 'openai',
  path: unversioned(openaiChatAdapter.path),
}

/** `generate()`/`stream()` on a hosted API, as one user message (and a system message). */
export const hostedGenerateAdapter: BackendAdapter = {
  kind: 'openai',
  path: hostedChatAdapter.path,
  encode: (request) => openaiChatAdapter.encode(toChat(request)),
  decode: (body) => openaiChatAdapter.decode(body),
  errorMessage: (status, body) => openaiChatAdapter.errorMessage(status, body),
  createStreamDecoder(fastFrames) {
    const inner = openaiChatAdapter.createStreamDecoder(fastFrames)
    return {
      push(chunk, onText) {
        inner.push(chunk, (delta) => {
          if (delta.text.length > 0) onText(delta.text)
        })
      },
      end(onText) {
        return inner.end((delta) => {
          if (delta.text.length > 0) onText(delta.text)
        })
      },
      get done() {
        return inner.done
      },
    }
  },
}

/** `embed()` on a hosted API: `{base}/embeddings`, model always sent. */
export const hostedEmbedAdapter: EmbedAdapter = {
  ...openaiEmbedAdapter,
  kind: 'openai',
  path: unversioned(openaiEmbedAdapter.path),
}
