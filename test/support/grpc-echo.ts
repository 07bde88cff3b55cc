/**
 * gRPC with @grpc/grpc-js and no proto files: the service pkg.Svc is written out by hand with
 * string (UTF-8) serializers.
 *   grpc-echo server PORT          Allowed and Denied answer "<method> <request>"; Chat echoes
 *                                  every message of a bidi stream; prints "listening"
 *   grpc-echo unary ADDR METHOD    one call; {"ok":true,"reply"} or {"ok":false,"code","details"}
 *   grpc-echo bidi ADDR N          N messages on one Chat stream; {"sent","received","inOrder"}
 * Clients give up after 30 s.
 */
import {
  type CallOptions,
  type Client,
  credentials,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
  type ServiceDefinition,
  type ServiceError,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';

const serialize = (s: string) => Buffer.from(s, 'utf8');
const deserialize = (b: Buffer) => b.toString('utf8');
const method = (name: string, stream: boolean) => ({
  path: `/pkg.Svc/${name}`,
  requestStream: stream,
  responseStream: stream,
  requestSerialize: serialize,
  requestDeserialize: deserialize,
  responseSerialize: serialize,
  responseDeserialize: deserialize,
  originalName: name,
});
const SERVICE: ServiceDefinition = {
  Allowed: method('Allowed', false),
  Denied: method('Denied', false),
  Chat: method('Chat', true),
};

type Unary = (
  request: string,
  options: CallOptions,
  callback: (err: ServiceError | null, reply?: string) => void,
) => void;
interface Duplex {
  write(m: string): boolean;
  end(): void;
  on(ev: 'data', f: (m: string) => void): void;
  on(ev: 'end', f: () => void): void;
  on(ev: 'error', f: (e: ServiceError) => void): void;
}

const out = (v: unknown) => console.log(JSON.stringify(v));
const [mode = '', ...args] = process.argv.slice(2);
const deadline = () => ({ deadline: Date.now() + 30_000 });

function client(addr: string): Client & Record<string, unknown> {
  const Ctor = makeGenericClientConstructor(SERVICE, 'pkg.Svc');
  return new Ctor(addr, credentials.createInsecure()) as Client & Record<string, unknown>;
}

if (mode === 'server') {
  const server = new Server();
  const impl: UntypedServiceImplementation = {
    Allowed: (call: { request: string }, cb: (e: null, r: string) => void) =>
      cb(null, `Allowed ${call.request}`),
    Denied: (call: { request: string }, cb: (e: null, r: string) => void) =>
      cb(null, `Denied ${call.request}`),
    Chat: (call: Duplex) => {
      call.on('data', (m) => call.write(m));
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  };
  server.addService(SERVICE, impl);
  server.bindAsync(`0.0.0.0:${args[0] ?? '50051'}`, ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
    console.log('listening');
  });
  process.on('SIGTERM', () => process.exit(0));
} else if (mode === 'unary') {
  const c = client(args[0] ?? '');
  const name = args[1] ?? 'Allowed';
  (c[name] as Unary).call(c, 'ping', deadline(), (err, reply) => {
    out(err ? { ok: false, code: err.code, details: err.details } : { ok: true, reply });
    process.exit(0);
  });
} else if (mode === 'bidi') {
  const c = client(args[0] ?? '');
  const n = Number(args[1] ?? 1000);
  const call = (c.Chat as (o: CallOptions) => Duplex).call(c, deadline());
  const received: string[] = [];
  call.on('data', (m) => received.push(m));
  call.on('error', (e) => {
    out({ sent: n, received: received.length, inOrder: false, code: e.code, details: e.details });
    process.exit(0);
  });
  call.on('end', () => {
    const inOrder = received.length === n && received.every((m, i) => m === `m${i}`);
    out({ sent: n, received: received.length, inOrder });
    process.exit(0);
  });
  for (let i = 0; i < n; i++) call.write(`m${i}`);
  call.end();
} else {
  console.error('usage: grpc-echo server PORT | unary ADDR METHOD | bidi ADDR N');
  process.exit(2);
}
