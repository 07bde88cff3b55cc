/**
 * What an application sees when the agent dies. The kernel closes a dead process's sockets,
 * and a plain close sends a FIN: a stream cut off mid-way would read as a complete one. So
 * every socket the agent holds toward an application (accepted on 15001/15006, or connected to
 * one) carries SO_LINGER {on, 0} while its connection is live: close() then sends a RST,
 * whoever closes it — the agent aborting it, or the kernel after a SIGKILL. The listeners carry
 * it and accepted sockets inherit it, and connectFromNetns sets it in the same native call as
 * the socket itself: no syscall of its own per connection.
 *
 * A graceful end must stay one: with linger 0, the close() that follows end() would reset the
 * connection and drop our FIN and any data still unacknowledged. endGracefully turns linger
 * off (one setsockopt) once the end is safe in the kernel, before Node closes the socket.
 */
import type { Socket } from 'node:net';
import { SocketError, setLinger } from '../net/index.js';

/** SO_LINGER seconds for application-facing sockets: 0, close() resets. */
export const RESET_ON_CLOSE = 0;

/**
 * Ends an application-facing socket normally. Linger stays on while Node still holds bytes
 * for it (the agent dying then must reset: those bytes die with it) and is turned off at
 * 'finish': every byte has reached the kernel and the FIN is queued behind them, and Node
 * closes the socket only after the 'finish' callbacks. From then on the kernel delivers the
 * rest and the FIN whatever happens to the agent.
 */
export function endGracefully(socket: Socket): void {
  socket.end(() => lingerOff(socket));
}

/** SO_LINGER off, so that close() sends a FIN after what is queued instead of a RST. */
export function lingerOff(socket: Socket): void {
  try {
    setLinger(socket, undefined);
  } catch (err) {
    // No fd (Node has closed the socket already, EBADF): nothing will be closed with linger.
    // Any other failure can only turn this end into a reset, which the application sees as
    // one; throwing from an 'end' listener would take the whole data path down instead.
    if (!(err instanceof SocketError)) throw err;
  }
}
