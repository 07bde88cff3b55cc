/**
 * The addon's one call that is not about sockets: malloc_trim(0), for the agent's memory
 * trimmer. It lives here because daemon/net is the only way into daemon/native.
 */
import { loadNative } from '../native/index.js';

/** Gives freed malloc memory back to the kernel; true when some went back (false off glibc). */
export function trimMallocArenas(): boolean {
  return loadNative().trimMemory();
}
