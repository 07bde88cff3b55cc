/** The node proxy (`meshd agent`): capture, outbound, inbound, HBONE, pooling. Issue 5. */

export {};
