/**
 * Chat with tools: the model asks for a function call, we run it and send the result back, until
 * it answers in text. Tool calls come out the same from every backend (Ollama, mlx_lm.server,
 * llama.cpp, vLLM): a non-empty `id`, the `name`, and `arguments` already parsed into an object.
 *
 * Run:
 *   LLM_ROUTER_ADMIN_URL=http://127.0.0.1:8000 node examples/chat-tools.ts
 *   OLLAMA_HOST=127.0.0.1:11434 MODEL=qwen3 node examples/chat-tools.ts
 * Optional: MODEL (default qwen3), QUESTION.
 */
import {
  type ChatMessage,
  createLLMRouter,
  hasErrorCode,
  isRouterError,
  type ToolCall,
} from 'llm-backend-router'

const router = createLLMRouter()

const tools = [
  {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', description: 'City name, e.g. Paris' } },
      required: ['city'],
    },
  },
]

// Your functions. The router never runs tools itself: it hands you the calls.
function runTool(call: ToolCall): string {
  if (call.name === 'get_weather') {
    const city = String(call.arguments.city ?? 'somewhere')
    return JSON.stringify({ city, celsius: 21, sky: 'sunny' })
  }
  return JSON.stringify({ error: `unknown tool ${call.name}` })
}

const messages: ChatMessage[] = [
  { role: 'system', content: 'Answer in one sentence. Use the tools when they help.' },
  { role: 'user', content: process.env.QUESTION ?? 'What is the weather in Paris?' },
]

try {
  for (let turn = 0; turn < 5; turn++) {
    const result = await router.chat({ model: process.env.MODEL ?? 'qwen3', messages, tools })
    const { message } = result
    if (message.reasoning) console.log(`[reasoning] ${message.reasoning}`)
    if (!message.toolCalls) {
      console.log(`[${result.model} on ${result.backend}] ${message.content}`)
      break
    }
    // Keep the assistant turn (with its toolCalls) in the history, then one tool message per call.
    messages.push(message)
    for (const call of message.toolCalls) {
      const output = runTool(call)
      console.log(`[tool] ${call.name}(${JSON.stringify(call.arguments)}) -> ${output}`)
      messages.push({ role: 'tool', toolCallId: call.id, content: output })
    }
  }
} catch (error) {
  // NO_CAPABLE_BACKEND: every record for the model declares capabilities without "tools".
  // INVALID_TOOL_ARGUMENTS: the model wrote arguments that are not JSON; asking again often helps.
  if (hasErrorCode(error, 'NO_CAPABLE_BACKEND'))
    console.error(`no backend declares tool support: ${error.message}`)
  else if (isRouterError(error)) console.error(`${error.code}: ${error.message}`)
  else console.error(error)
  process.exitCode = 1
} finally {
  await router.close()
}
