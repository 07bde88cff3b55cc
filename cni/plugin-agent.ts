/**
 * meshd-cni ↔ meshd agent: the request shapes and the real transport, HTTP/1.1 over the
 * agent's unix socket with one deadline for the whole exchange. The plugin logic (plugin.ts)
 * gets the transport injected, so tests use a fake agent.
 */
/* Not an ES import of node:http: that loads Node's bundled undici (see telemetry/http-endpoint.ts). */
const { request: httpRequest } = process.getBuiltinModule('node:http');

/** Body of `POST /v1/cni`. */
export interface AgentCniRequest {
  command: 'ADD' | 'DEL' | 'CHECK';
  containerId: string;
  /** CNI_NETNS; may be '' on DEL. */
  netns: string;
  ifName: string;
  cniVersion: string;
  namespace: string;
  name: string;
  /** K8S_POD_UID when the runtime passed it. */
  uid?: string;
  serviceAccount?: string;
  labels: Record<string, string>;
  /** The workload's addresses from prevResult, without prefix length. */
  ips: string[];
}

/** Answer of `POST /v1/cni` on success (HTTP 200). */
export interface AgentCniAnswer {
  captured: boolean;
  workload: string;
}

/** Body of an agent error answer (any non-200 status); passed on as the plugin's CNI error. */
export interface AgentErrorAnswer {
  code: number;
  msg: string;
  details?: string;
}

/** One exchange with the agent. */
export interface AgentRequest {
  socketPath: string;
  /** Deadline of the whole exchange (connect, request, answer). */
  timeoutMs: number;
  method: 'GET' | 'POST';
  path: '/v1/cni' | '/v1/status';
  body?: AgentCniRequest;
}

export interface AgentResponse {
  status: number;
  /** The parsed JSON body; the raw text when it is not JSON; undefined when empty. */
  body: unknown;
}

/**
 * The transport: resolves with the agent's answer (any HTTP status), rejects when there is
 * none, with the socket error's `code` (ENOENT, ECONNREFUSED, …) or `ETIMEDOUT` on the deadline.
 */
export type AgentSend = (request: AgentRequest) => Promise<AgentResponse>;

/** Thrown by the transport when the agent did not answer within the deadline. */
export class AgentTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';

  constructor(request: Pick<AgentRequest, 'socketPath' | 'timeoutMs' | 'method' | 'path'>) {
    super(
      `${request.method} ${request.path} on ${request.socketPath}: no answer within ${request.timeoutMs} ms`,
    );
    this.name = 'AgentTimeoutError';
  }
}

/** Agent answers are small; a larger one is a protocol error, not something to buffer. */
export const AGENT_MAX_ANSWER_BYTES = 64 * 1024;

/** The real transport: node:http over the unix socket, no keep-alive, one deadline. */
export const unixSocketSend: AgentSend = (request) =>
  new Promise<AgentResponse>((resolve, reject) => {
    let settled = false;
    const payload =
      request.body === undefined ? undefined : Buffer.from(JSON.stringify(request.body), 'utf8');
    const headers: Record<string, string | number> = {
      accept: 'application/json',
      connection: 'close',
    };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    const req = httpRequest({
      socketPath: request.socketPath,
      method: request.method,
      path: request.path,
      headers,
      agent: false,
    });
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new AgentTimeoutError(request)), request.timeoutMs);
    req.on('error', fail);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > AGENT_MAX_ANSWER_BYTES) {
          fail(
            Object.assign(new Error(`the agent's answer exceeds ${AGENT_MAX_ANSWER_BYTES} bytes`), {
              code: 'EMSGSIZE',
            }),
          );
        } else chunks.push(chunk);
      });
      res.on('error', fail);
      res.on('aborted', () =>
        fail(
          Object.assign(new Error('the agent closed the connection mid-answer'), {
            code: 'ECONNRESET',
          }),
        ),
      );
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        if (text.trim() !== '') {
          try {
            body = JSON.parse(text);
          } catch {
            body = text;
          }
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.end(payload);
  });
