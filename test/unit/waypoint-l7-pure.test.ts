// The waypoint L7 engine's pure decisions, table by table: protocol detection, endpoint choice,
// header rewriting, local replies.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type AppProtocol,
  clientErrorStatus,
  deniedReply,
  detectProtocol,
  downstreamResponseHeaders,
  type Endpoint,
  grpcMessage,
  grpcStatusOf,
  h2ForwardHeaders,
  isGrpc,
  LoadCounter,
  pickEndpoint,
  traceIdOf,
  upstreamFailureReply,
  upstreamRequestHeaders,
} from '../../daemon/waypoint/l7/index.js';

test('detectProtocol: appProtocol wins, else the first bytes decide', () => {
  const cases: [AppProtocol, string, boolean, string][] = [
    ['http', '', false, 'http1'],
    ['http', '\x16\x03\x01', false, 'http1'],
    ['http2', '', false, 'h2c'],
    ['grpc', 'GET / HTTP/1.1\r\n', false, 'h2c'],
    ['tcp', 'GET / HTTP/1.1\r\n', false, 'opaque'],
    [undefined, '', false, 'more'],
    [undefined, '', true, 'opaque'], // server-first protocols (SMTP, MySQL): nothing came
    [undefined, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', false, 'h2c'],
    [undefined, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04', false, 'h2c'],
    [undefined, 'PRI * HTTP/2', false, 'more'],
    [undefined, 'PRI * HTTP/2', true, 'opaque'],
    [undefined, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', false, 'http1'],
    [undefined, 'GET / HTTP/1.0\r\n', false, 'http1'],
    [undefined, 'POST /x?y=1 HTTP/1.1\r\n', false, 'http1'],
    [undefined, 'PUT /p HTTP/1.1\r\n', false, 'http1'], // starts like the preface
    [undefined, 'PATCH /p HTTP/1.1', false, 'http1'],
    [undefined, 'GE', false, 'more'],
    [undefined, 'GE', true, 'opaque'],
    [undefined, 'GET ', false, 'more'],
    [undefined, 'GET /very/long', false, 'more'],
    [undefined, 'GET /very/long', true, 'http1'], // a slow client: let HTTP's timeouts judge
    [undefined, 'GET / HTT', false, 'more'],
    [undefined, 'GET / HTT', true, 'http1'],
    [undefined, 'GET / HTTP/2.0\r\n', false, 'opaque'],
    [undefined, 'GET / FOO/1.1\r\n', false, 'opaque'],
    [undefined, 'GET  / HTTP/1.1\r\n', false, 'opaque'],
    [undefined, 'GET\r\n', false, 'opaque'],
    [undefined, 'PING\r\n', false, 'opaque'], // redis inline
    [undefined, '*1\r\n$4\r\nPING\r\n', false, 'opaque'], // redis RESP
    [undefined, '\x16\x03\x01\x02\x00', false, 'opaque'], // TLS ClientHello
    [undefined, '\x00\x00\x00\x08\x04\xd2\x16\x2f', false, 'opaque'], // PostgreSQL SSLRequest
    [undefined, 'A'.repeat(30), false, 'opaque'], // longer than any method
  ];
  for (const [configured, head, timedOut, want] of cases) {
    const got = detectProtocol(configured, Buffer.from(head, 'latin1'), timedOut);
    assert.equal(got, want, `${configured} ${JSON.stringify(head)} timedOut=${timedOut}`);
  }
  // A request line longer than the detection bound is handed to the HTTP parser.
  const long = Buffer.from(`GET /${'a'.repeat(9000)}`, 'latin1');
  assert.equal(detectProtocol(undefined, long, false), 'http1');
});

const eps = (...ids: string[]): Endpoint[] => ids.map((id, i) => ({ ip: '10.0.0.1', port: i, id }));

test('pickEndpoint: least request of two random choices, ties to the first, skipping tried', () => {
  const seq = (...v: number[]) => {
    let i = 0;
    return () => v[i++ % v.length] as number;
  };
  const load = (m: Record<string, number>) => (id: string) => m[id] ?? 0;
  const cases: {
    name: string;
    endpoints: Endpoint[];
    load: Record<string, number>;
    random: number[];
    tried?: string[];
    want: string | undefined;
  }[] = [
    { name: 'none', endpoints: [], load: {}, random: [0], want: undefined },
    { name: 'one', endpoints: eps('a'), load: { a: 9 }, random: [0.9], want: 'a' },
    // random 0 → a; second draw 0 over the other n-1 → shifted past a → b
    { name: 'tie keeps first', endpoints: eps('a', 'b', 'c'), load: {}, random: [0, 0], want: 'a' },
    {
      name: 'second less loaded',
      endpoints: eps('a', 'b', 'c'),
      load: { a: 2, b: 1 },
      random: [0, 0],
      want: 'b',
    },
    {
      name: 'first less loaded',
      endpoints: eps('a', 'b', 'c'),
      load: { a: 0, c: 5 },
      random: [0, 0.99],
      want: 'a',
    },
    {
      name: 'distinct draws',
      endpoints: eps('a', 'b', 'c'),
      load: { c: 1 },
      random: [0.99, 0.99],
      want: 'b',
    },
    {
      name: 'random 1.0 clamps',
      endpoints: eps('a', 'b'),
      load: { a: 1 },
      random: [1, 1],
      want: 'b',
    },
    {
      name: 'tried skipped',
      endpoints: eps('a', 'b', 'c'),
      load: {},
      random: [0, 0],
      tried: ['a'],
      want: 'b',
    },
    {
      name: 'all tried',
      endpoints: eps('a', 'b'),
      load: {},
      random: [0],
      tried: ['a', 'b'],
      want: undefined,
    },
    {
      name: 'last untried',
      endpoints: eps('a', 'b', 'c'),
      load: { c: 100 },
      random: [0],
      tried: ['a', 'b'],
      want: 'c',
    },
  ];
  for (const c of cases) {
    const got = pickEndpoint(c.endpoints, load(c.load), seq(...c.random), new Set(c.tried ?? []));
    assert.equal(got?.id, c.want, c.name);
  }
});

test('pickEndpoint spreads load: two choices keep in-flight counts even', () => {
  const counter = new LoadCounter();
  const list = eps('a', 'b', 'c', 'd');
  let x = 12345;
  const random = () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
  for (let i = 0; i < 400; i++) {
    const e = pickEndpoint(list, counter.get, random);
    assert.ok(e);
    counter.inc(e.id);
  }
  const counts = list.map((e) => counter.get(e.id));
  assert.ok(Math.max(...counts) - Math.min(...counts) <= 2, `uneven: ${counts}`);
  list.forEach((e, i) => {
    for (let n = 0; n < (counts[i] as number); n++) counter.dec(e.id);
  });
  assert.equal(counter.size, 0, 'ids at zero are forgotten');
});

test('upstreamRequestHeaders drops hop-by-hop fields and adds x-request-id', () => {
  const cases: { raw: string[]; upgrade?: boolean; want: string[]; id?: string }[] = [
    { raw: ['Host', 'a'], want: ['Host', 'a', 'x-request-id', 'ID'] },
    {
      raw: [
        'Host',
        'a',
        'Connection',
        'keep-alive, X-Foo',
        'X-Foo',
        '1',
        'Keep-Alive',
        'timeout=5',
        'X-Bar',
        '2',
      ],
      want: ['Host', 'a', 'X-Bar', '2', 'x-request-id', 'ID'],
    },
    {
      raw: [
        'Proxy-Connection',
        'keep-alive',
        'Transfer-Encoding',
        'chunked',
        'TE',
        'trailers, deflate',
        'Upgrade',
        'websocket',
      ],
      want: ['TE', 'trailers', 'x-request-id', 'ID'],
    },
    { raw: ['te', 'gzip'], want: ['x-request-id', 'ID'] },
    {
      raw: ['Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k'],
      upgrade: true,
      want: [
        'Connection',
        'upgrade',
        'Upgrade',
        'websocket',
        'Sec-WebSocket-Key',
        'k',
        'x-request-id',
        'ID',
      ],
    },
    {
      raw: [
        'X-Request-Id',
        'mine',
        'traceparent',
        '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      ],
      want: [
        'X-Request-Id',
        'mine',
        'traceparent',
        '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      ],
      id: 'mine',
    },
    // Headers of other lengths pass untouched, case and duplicates kept.
    {
      raw: ['Cookie', 'a=1', 'Cookie', 'b=2', 'x-forwarded-for', '1.2.3.4'],
      want: ['Cookie', 'a=1', 'Cookie', 'b=2', 'x-forwarded-for', '1.2.3.4', 'x-request-id', 'ID'],
    },
  ];
  for (const c of cases) {
    const r = upstreamRequestHeaders(c.raw, c.upgrade ?? false, () => 'ID');
    assert.deepEqual(r.headers, c.want, JSON.stringify(c.raw));
    assert.equal(r.requestId, c.id ?? 'ID');
  }
  const t = upstreamRequestHeaders(
    ['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
    false,
    () => 'x',
  );
  assert.equal(t.traceId, '0af7651916cd43dd8448eb211c80319c');
});

test('downstreamResponseHeaders drops hop-by-hop fields, keeps them on a 101, adds close when draining', () => {
  const raw = [
    'Content-Type',
    'text/plain',
    'Connection',
    'keep-alive',
    'Keep-Alive',
    'timeout=5',
    'Transfer-Encoding',
    'chunked',
    'Trailer',
    'grpc-status',
  ];
  assert.deepEqual(downstreamResponseHeaders(raw, false, false), [
    'Content-Type',
    'text/plain',
    'Trailer',
    'grpc-status',
  ]);
  assert.deepEqual(downstreamResponseHeaders(raw, false, true), [
    'Content-Type',
    'text/plain',
    'Trailer',
    'grpc-status',
    'Connection',
    'close',
  ]);
  assert.deepEqual(
    downstreamResponseHeaders(
      ['Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Accept', 'x'],
      true,
      true,
    ),
    ['Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Accept', 'x'],
  );
  assert.deepEqual(
    downstreamResponseHeaders(['Connection', 'x-secret', 'X-Secret', '1', 'A', 'b'], false, false),
    ['A', 'b'],
  );
});

test('h2ForwardHeaders drops connection-specific fields and keeps pseudo-headers', () => {
  const out = h2ForwardHeaders(
    {
      ':method': 'POST',
      ':path': '/svc/M',
      ':authority': 'a',
      ':scheme': 'http',
      'content-type': 'application/grpc',
      te: 'trailers',
      connection: 'keep-alive',
      'keep-alive': '1',
      'transfer-encoding': 'chunked',
      upgrade: 'h2c',
      'http2-settings': 'x',
      host: 'a',
    },
    () => 'ID',
  );
  assert.deepEqual(out, {
    ':method': 'POST',
    ':path': '/svc/M',
    ':authority': 'a',
    ':scheme': 'http',
    'content-type': 'application/grpc',
    te: 'trailers',
    'x-request-id': 'ID',
  });
  assert.equal(h2ForwardHeaders({ te: 'gzip' }, undefined).te, undefined);
  assert.equal(h2ForwardHeaders({ 'x-request-id': 'mine' }, () => 'ID')['x-request-id'], 'mine');
});

test('traceIdOf, isGrpc, grpcStatusOf', () => {
  const cases: [string | undefined, string | undefined][] = [
    ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', '0af7651916cd43dd8448eb211c80319c'],
    ['00-00000000000000000000000000000000-b7ad6b7169203331-01', undefined],
    ['00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01', undefined],
    ['00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01', undefined],
    ['ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', undefined],
    ['00-0af7651916cd43dd8448eb211c80319c', undefined],
    [undefined, undefined],
  ];
  for (const [tp, want] of cases) assert.equal(traceIdOf(tp), want, String(tp));
  assert.equal(isGrpc('application/grpc'), true);
  assert.equal(isGrpc('application/grpc+proto'), true);
  assert.equal(isGrpc('application/json'), false);
  assert.equal(isGrpc(undefined), false);
  assert.equal(grpcStatusOf('0'), 0);
  assert.equal(grpcStatusOf('14'), 14);
  assert.equal(grpcStatusOf(''), undefined);
  assert.equal(grpcStatusOf('x'), undefined);
});

test('local replies: Istio denial text, Envoy failure texts, gRPC trailers-only', () => {
  assert.deepEqual(deniedReply(false), {
    status: 403,
    headers: { 'content-type': 'text/plain', 'content-length': '19' },
    body: 'RBAC: access denied',
    grpcStatus: undefined,
  });
  assert.deepEqual(deniedReply(true), {
    status: 200,
    headers: {
      'content-type': 'application/grpc',
      'grpc-status': '7',
      'grpc-message': 'RBAC: access denied',
    },
    body: '',
    grpcStatus: 7,
  });
  assert.equal(upstreamFailureReply('UH', false).body, 'no healthy upstream');
  assert.equal(upstreamFailureReply('UH', false).status, 503);
  assert.match(upstreamFailureReply('UF', false).body, /connection failure$/);
  assert.match(upstreamFailureReply('UC', false).body, /connection termination$/);
  assert.equal(upstreamFailureReply('UF', true).status, 200);
  assert.equal(upstreamFailureReply('UF', true).headers['grpc-status'], '14');
  assert.equal(upstreamFailureReply('UT', true).headers['grpc-status'], '4');
  assert.equal(grpcMessage('50% done\n'), '50%25 done%0A');
  assert.equal(clientErrorStatus('HPE_HEADER_OVERFLOW'), 431);
  assert.equal(clientErrorStatus('HPE_INVALID_TRANSFER_ENCODING'), 400);
  assert.equal(clientErrorStatus('ERR_HTTP_REQUEST_TIMEOUT'), 408);
  assert.equal(clientErrorStatus(undefined), 400);
});
