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
 * connection and drop our FIN and any data still unacknowledged. Before ending such a socket
 * normally the agent turns linger off (one setsockopt).
 */
import type { Socket } from 'node:net';
import { SocketError, setLinger } from '../../net/index.js';

/** SO_LINGER seconds for application-facing sockets: 0, close() resets. */
export const RESET_ON_CLOSE = 0;

/** Turns linger off before a graceful end(), so that the close() after it sends a FIN. */
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
