import type { ChatStream, RouterError } from '../../src/index.js'

/** Reads a chat stream that must fail: the text delivered before the failure, and the error. */
export async function failedStream(stream: ChatStream): Promise<{ text: string; error: RouterError }> {
  let text = ''
  try {
    for await (const chunk of stream) text += chunk.text
  } catch (error) {
    return { text, error: error as RouterError }
  }
  throw new Error(`expected the stream to fail; it ended after ${JSON.stringify(text)}`)
}
