/**
 * The waypoint's line to the local agent: JSON over the agent's unix socket (root only). The
 * agent registers the replica as a Workload of its node and signs the replica's CSRs; see
 * daemon/agent/waypoint-endpoint.ts for the other side.
 */
import { request } from 'node:http';
import { MeshdError } from '../errors.js';

export interface Registration {
  namespace: string;
  waypoint: string;
  replica: string;
  addresses: string[];
  ready: boolean;
}

export interface Registered {
  identity: string;
  trustDomain: string;
  servers: string[];
  node: string;
}

export class AgentLink {
  readonly #socketPath: string;
  readonly #timeoutMs: number;

  constructor(socketPath: string, timeoutMs = 30_000) {
    this.#socketPath = socketPath;
    this.#timeoutMs = timeoutMs;
  }

  register(r: Registration): Promise<Registered> {
    return this.#post('/v1/waypoint/register', r) as Promise<Registered>;
  }

  async certificate(
    namespace: string,
    replica: string,
    csrDer: Uint8Array,
  ): Promise<{ certChain: string[]; roots: string[] }> {
    const csr = Buffer.from(csrDer).toString('base64');
    return (await this.#post('/v1/waypoint/certificate', { namespace, replica, csr })) as {
      certChain: string[];
      roots: string[];
    };
  }

  async deregister(namespace: string, replica: string): Promise<void> {
    await this.#post('/v1/waypoint/deregister', { namespace, replica });
  }

  #post(path: string, body: unknown): Promise<unknown> {
    const payload = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const fail = (why: string, cause?: unknown) =>
        reject(
          new MeshdError(
            'MESHD_E_AGENT',
            `${path} on the agent's socket ${this.#socketPath}: ${why}`,
            {
              hint: 'the waypoint needs the meshd agent of its host; check it runs and that MESHD_AGENT_SOCKET names its MESHD_CNI_SOCKET',
              cause,
            },
          ),
        );
      const req = request(
        {
          socketPath: this.#socketPath,
          path,
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(payload),
          },
          timeout: this.#timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            let answer: unknown;
            try {
              answer = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch (err) {
              fail('the answer is not JSON', err);
              return;
            }
            if (res.statusCode === 200) resolve(answer);
            else fail(`${res.statusCode}: ${(answer as { msg?: string }).msg ?? 'refused'}`);
          });
          res.on('error', (err) => fail(err.message, err));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.#timeoutMs} ms`)));
      req.on('error', (err) => fail(err.message, err));
      req.end(payload);
    });
  }
}
