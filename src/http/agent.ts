/**
 * A connection pool for admin calls that its owner can cut off completely. undici's own
 * `Agent.destroy()` waits for sockets still in their TCP connect, so an endpoint that never completes
 * the handshake would hold the owner's `close()` for the whole connect timeout; this pool tracks those
 * sockets and destroys them too. Keep-alive sockets are reused across calls as usual.
 */
import type { Socket } from 'node:net'
import { Agent, buildConnector, type Dispatcher } from 'undici'

export interface AdminAgent {
  readonly dispatcher: Dispatcher
  /** Destroys the pool and every socket still connecting. Never rejects. */
  destroy(): Promise<void>
}

export function createAdminAgent(connectTimeoutMs: number): AdminAgent {
  const connecting = new Set<Socket>()
  const connector = buildConnector({ timeout: connectTimeoutMs })
  const agent = new Agent({
    keepAliveTimeout: 4000,
    connect: (options, callback) => {
      const socket = connector(options, (err, connected) => {
        connecting.delete(socket as Socket)
        if (err === null) callback(null, connected as Socket)
        else callback(err, null)
      }) as unknown as Socket
      connecting.add(socket)
      return socket
    },
  })
  return {
    dispatcher: agent,
    async destroy() {
      for (const socket of connecting) socket.destroy()
      connecting.clear()
      await agent.destroy().catch(() => {})
    },
  }
}
