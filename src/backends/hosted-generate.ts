/**
 * `generate()`/`stream()` on a hosted OpenAI-compatible API (`backend_type: 'openai'`): hosted APIs
 * serve chat models through `/chat/completions` only (OpenAI, Groq, Mistral and Gemini have no
 * `/completions` for them), so the prompt goes as a user message and `system` as a system message,
 * through the chat adapter; the answer's text is the generation. Backend kind `mlx` (OpenAI-compatible).
 */
import type { ChatMessage } from '../chat/types.js'
import type { ChatWire } from './chat-common.js'
import { openaiChatAdapter } from './openai-chat.js'
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

export const hostedGenerateAdapter: BackendAdapter = {
  kind: 'mlx',
  path: openaiChatAdapter.path,
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
