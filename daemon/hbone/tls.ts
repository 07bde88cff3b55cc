/**
 * TLS for HBONE (DESIGN §4): TLS 1.3 only, AES-GCM suites, ALPN h2, no SNI, peer identity =
 * the certificate's single URI SAN. The server side verifies the client certificate against
 * the trust bundle of its SecureContext and checks the trust domain (the rest is policy's
 * job); the client side requires the server's SPIFFE ID to be exactly the expected one.
 */
import { constants as cryptoConstants, X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import {
  createSecureContext,
  type PeerCertificate,
  type SecureContext,
  TLSSocket,
  connect as tlsConnect,
} from 'node:tls';
import {
  checkSvidConformance,
  classify,
  parseSpiffeId,
  type SpiffeId,
  spiffeIdOfPeer,
} from '../identity/index.js';
import { HboneError } from './errors.js';

export const HBONE_ALPN = 'h2';
const TLS_RECORD_HANDSHAKE = 0x16;
const TLS_RECORD_HEADER_BYTES = 5;
/** A TLS plaintext record holds at most 2^14 bytes (RFC 8446 §5.1). */
const TLS_MAX_RECORD_BYTES = 16_384;
const ignore = () => {};

export interface HboneTlsMaterial {
  /** PEM: leaf first, then intermediates (IssuedCertificate.certChainPem). */
  certChainPem: string;
  /** PKCS#8 PEM private key. */
  keyPem: string;
  /** PEM roots of the trust bundle (both roots during a root rotation). */
  rootsPem: string | string[];
}

/**
 * A SecureContext with HBONE's TLS rules, for one workload identity: serving on 15008 and
 * dialing peers. Make one per certificate (cache it by serial) and reuse it: building a
 * context per connection costs about a third more CPU per handshake.
 */
export function hboneSecureContext(material: HboneTlsMaterial): SecureContext {
  return createSecureContext({
    cert: material.certChainPem,
    key: material.keyPem,
    ca: material.rootsPem,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384',
    // Nobody resumes HBONE sessions: do not make or send tickets.
    secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
  });
}

/** Why the server side refused a connection before any HTTP/2 (low cardinality). */
export type TlsRejectReason =
  | 'no-secure-context'
  | 'not-tls'
  | 'closed'
  | 'handshake-timeout'
  | 'tls-handshake'
  | 'no-client-certificate'
  | 'certificate-not-valid-now'
  | 'untrusted-certificate'
  | 'invalid-svid'
  | 'not-a-workload-identity'
  | 'tls-version'
  | 'alpn';

export class TlsRejection extends Error {
  readonly reason: TlsRejectReason;
  /** The client's SPIFFE ID, when the refusal came after the certificate was read. */
  readonly peer: SpiffeId | undefined;
  constructor(reason: TlsRejectReason, detail: string, cause?: unknown, peer?: SpiffeId) {
    super(`${reason}: ${detail}`, { cause });
    this.reason = reason;
    this.peer = peer;
  }
}

/**
 * Only workloads (ns/<namespace>/sa/<account>) open tunnels: a node's certificate
 * (node/<name>) is for the control plane, and accepting it would let anyone holding a node's
 * key speak as a workload of no namespace, past every namespace-based policy.
 */
function assertWorkloadIdentity(spiffeId: SpiffeId): void {
  const kind = classify(parseSpiffeId(spiffeId)).kind;
  if (kind !== 'workload') {
    throw new TlsRejection(
      'not-a-workload-identity',
      `${spiffeId} is a ${kind} identity; only workload identities may open HBONE tunnels`,
      undefined,
      spiffeId,
    );
  }
}

/**
 * Calls `onRecord` with the connection's whole first TLS record once it has arrived, or with
 * a reason to refuse. Until then a connection holds a socket and a few bytes, not a TLS
 * session: a peer that trickles its ClientHello costs the agent almost nothing.
 */
function readFirstRecord(
  raw: Socket,
  onRecord: (record: Buffer) => void,
  onRefuse: (rejection: TlsRejection) => void,
): void {
  const chunks: Buffer[] = [];
  let length = 0;
  let recordBytes: number | undefined;
  const refuse = (rejection: TlsRejection) => {
    raw.off('data', onData);
    onRefuse(rejection);
  };
  const onData = (chunk: Buffer) => {
    chunks.push(chunk);
    length += chunk.length;
    const first = chunks[0] as Buffer;
    if (first[0] !== TLS_RECORD_HANDSHAKE) {
      refuse(new TlsRejection('not-tls', `first byte 0x${first[0]?.toString(16)} is not TLS`));
      return;
    }
    if (recordBytes === undefined) {
      if (length < TLS_RECORD_HEADER_BYTES) return;
      // The header may come in pieces; it takes at most five chunks to hold it.
      const header = first.length >= TLS_RECORD_HEADER_BYTES ? first : Buffer.concat(chunks);
      recordBytes = header.readUInt16BE(3);
      if (recordBytes > TLS_MAX_RECORD_BYTES) {
        refuse(new TlsRejection('not-tls', `a first TLS record of ${recordBytes} bytes`));
        return;
      }
    }
    if (length < TLS_RECORD_HEADER_BYTES + recordBytes) return;
    raw.off('data', onData);
    raw.pause();
    onRecord(chunks.length === 1 ? first : Buffer.concat(chunks, length));
  };
  raw.on('data', onData);
}

/**
 * The client of an accepted connection: its SPIFFE ID, and its certificate, parsed only when
 * something asks for it (nothing on the data path does).
 */
export class ClientIdentity {
  readonly spiffeId: SpiffeId;
  /** The client's leaf certificate, DER. */
  readonly certificateDer: Buffer;
  #certificate: X509Certificate | undefined;

  constructor(spiffeId: SpiffeId, certificateDer: Buffer) {
    this.spiffeId = spiffeId;
    this.certificateDer = certificateDer;
  }

  get certificate(): X509Certificate {
    this.#certificate ??= new X509Certificate(this.certificateDer);
    return this.#certificate;
  }
}

export interface AcceptedTls {
  socket: TLSSocket;
  spiffeId: SpiffeId;
  peer: ClientIdentity;
}

/**
 * The DER of the client's leaf certificate, or undefined if it sent none. Not through
 * getPeerX509Certificate(): on the server side of a client that sends its chain (an SVID and
 * its intermediate), Node 24 leaves one parsed copy of the intermediate behind per call, ~5 KiB
 * in ~40 small allocations that outlive the connection: after a burst of HBONE handshakes
 * they are spread over the whole of glibc's heap and keep ~10 MiB of its pages resident that
 * malloc_trim cannot give back (docs/benchmarks.md, "Agent memory"). getPeerCertificate() costs
 * ~0.1 ms more per handshake (a few % of one; nothing per stream).
 */
function clientCertificateDer(tls: TLSSocket): Buffer | undefined {
  const raw = (tls.getPeerCertificate() as Partial<PeerCertificate> | null)?.raw;
  return raw && raw.length > 0 ? raw : undefined;
}

export interface AcceptTlsOptions {
  secureContext: SecureContext;
  trustDomain: string;
  handshakeTimeoutMs: number;
}

/*
 * A server-side TLSSocket made by hand (rather than by tls.Server, which cannot take a ready
 * SecureContext per connection) misses two steps tls.Server performs on 'secure' (Node's
 * onServerSocketSecure): reading OpenSSL's verdict on the client chain — OpenSSL completes
 * the handshake whatever the verdict and leaves rejecting to JavaScript — and clearing
 * `secureConnecting`, without which an HTTP/2 session waits for a 'secureConnect' that server
 * sockets never emit. Both touch Node internals; both fail closed if those ever change (no
 * verdict → refused; the HBONE tests would then time out instead of passing).
 */
type ServerTlsInternals = {
  _handle?: { verifyError?: () => { code?: string; message: string } | null };
  secureConnecting?: boolean;
};

/** OpenSSL's verdict on the client chain; null when it verified against the bundle. */
function verifyErrorOf(socket: TLSSocket): { code?: string; message: string } | null {
  const handle = (socket as unknown as ServerTlsInternals)._handle;
  if (typeof handle?.verifyError !== 'function') {
    return { code: 'NO_VERIFY_RESULT', message: 'the TLS layer gave no verification result' };
  }
  return handle.verifyError.call(handle) ?? null;
}

function markSecureEstablished(socket: TLSSocket): void {
  (socket as unknown as ServerTlsInternals).secureConnecting = false;
}

/**
 * Server side of the handshake on an accepted TCP socket: refuses non-TLS bytes, runs TLS with
 * a required, bundle-verified client certificate, and returns the client's SPIFFE ID. Rejects
 * with TlsRejection and destroys the socket on any failure; bounded by handshakeTimeoutMs.
 */
export function acceptTls(raw: Socket, options: AcceptTlsOptions): Promise<AcceptedTls> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let tlsSocket: TLSSocket | undefined;
    const fail = (rejection: TlsRejection) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      tlsSocket?.destroy();
      raw.destroy();
      reject(rejection);
    };
    const timer = setTimeout(
      () =>
        fail(
          new TlsRejection(
            'handshake-timeout',
            `no TLS handshake within ${options.handshakeTimeoutMs} ms`,
          ),
        ),
      options.handshakeTimeoutMs,
    );
    timer.unref();
    if (raw.destroyed || !raw.readable) {
      fail(new TlsRejection('closed', 'the client closed the connection'));
      return;
    }
    const onRawError = (err: Error) => fail(new TlsRejection('closed', err.message, err));
    const onRawClose = () => fail(new TlsRejection('closed', 'the client closed the connection'));
    raw.on('error', onRawError);
    raw.once('close', onRawClose);
    raw.once('end', onRawClose);

    readFirstRecord(
      raw,
      (first: Buffer) => {
        raw.unshift(first);
        // TLS has no half-close: a FIN from the client ends the connection (listeners made for
        // proxying are usually allowHalfOpen, which the TLS socket would inherit).
        raw.allowHalfOpen = false;
        raw.off('close', onRawClose);
        raw.off('end', onRawClose);
        raw.off('error', onRawError);
        raw.on('error', ignore); // errors surface on the TLS socket
        let tls: TLSSocket;
        try {
          tls = new TLSSocket(raw, {
            isServer: true,
            secureContext: options.secureContext,
            requestCert: true,
            rejectUnauthorized: true,
            ALPNProtocols: [HBONE_ALPN],
          });
        } catch (err) {
          fail(new TlsRejection('tls-handshake', (err as Error).message, err));
          return;
        }
        tlsSocket = tls;
        const onError = (err: Error & { code?: string }) => {
          if (err.code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') {
            fail(new TlsRejection('no-client-certificate', 'the client sent no certificate', err));
          } else {
            fail(new TlsRejection('tls-handshake', err.message, err));
          }
        };
        const onClose = () => fail(new TlsRejection('closed', 'closed during the handshake'));
        tls.on('error', onError);
        tls.once('close', onClose);
        tls.once('secure', () => {
          if (settled) return;
          const verifyError = verifyErrorOf(tls);
          if (verifyError) {
            const notNow =
              verifyError.code === 'CERT_HAS_EXPIRED' || verifyError.code === 'CERT_NOT_YET_VALID';
            fail(
              new TlsRejection(
                notNow ? 'certificate-not-valid-now' : 'untrusted-certificate',
                `${verifyError.code ?? ''} ${verifyError.message}`.trim(),
              ),
            );
            return;
          }
          if (tls.getProtocol() !== 'TLSv1.3') {
            fail(new TlsRejection('tls-version', `${tls.getProtocol()} is not TLSv1.3`));
            return;
          }
          if (tls.alpnProtocol !== HBONE_ALPN) {
            fail(new TlsRejection('alpn', `ALPN ${String(tls.alpnProtocol)} is not h2`));
            return;
          }
          const der = clientCertificateDer(tls);
          if (!der) {
            fail(new TlsRejection('no-client-certificate', 'the client sent no certificate'));
            return;
          }
          let spiffeId: SpiffeId;
          try {
            spiffeId = checkSvidConformance(der, options.trustDomain);
          } catch (err) {
            fail(new TlsRejection('invalid-svid', (err as Error).message, err));
            return;
          }
          try {
            assertWorkloadIdentity(spiffeId);
          } catch (err) {
            fail(err as TlsRejection);
            return;
          }
          settled = true;
          clearTimeout(timer);
          markSecureEstablished(tls);
          tls.off('error', onError);
          tls.off('close', onClose);
          tls.on('error', ignore); // from here on the HTTP/2 session handles socket errors
          resolve({ socket: tls, spiffeId, peer: new ClientIdentity(spiffeId, der) });
        });
      },
      fail,
    );
    raw.resume();
  });
}

export interface ConnectTlsOptions {
  secureContext: SecureContext;
  trustDomain: string;
  expectedIdentity: string;
  handshakeTimeoutMs: number;
  destination: string;
}

/**
 * Client side of the handshake on a connected TCP socket: TLS 1.3, ALPN h2, no SNI, and the
 * server's SPIFFE ID must equal expectedIdentity. Rejects with HboneError ('tls', 'identity',
 * 'timeout') and destroys the socket on failure.
 */
export function connectTls(raw: Socket, options: ConnectTlsOptions): Promise<TLSSocket> {
  const { destination } = options;
  return new Promise((resolve, reject) => {
    let settled = false;
    let identityError: HboneError | undefined;
    const checkServerIdentity = (_host: string, cert: PeerCertificate): Error | undefined => {
      try {
        const id = spiffeIdOfPeer(new X509Certificate(cert.raw), options.trustDomain);
        if (id === options.expectedIdentity) return undefined;
        identityError = new HboneError(
          'identity',
          `the server is ${id}, expected ${options.expectedIdentity}`,
          { destination },
        );
      } catch (cause) {
        identityError = new HboneError('identity', 'the server certificate is not an SVID', {
          destination,
          cause,
        });
      }
      return identityError;
    };
    // TLS has no half-close: the peer's FIN ends the connection, whatever dial() made.
    raw.allowHalfOpen = false;
    const tls = tlsConnect({
      socket: raw,
      secureContext: options.secureContext,
      ALPNProtocols: [HBONE_ALPN],
      rejectUnauthorized: true,
      checkServerIdentity,
    });
    const fail = (err: HboneError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      tls.destroy();
      raw.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () =>
        fail(
          new HboneError('timeout', `no TLS handshake within ${options.handshakeTimeoutMs} ms`, {
            destination,
            retryable: true,
          }),
        ),
      options.handshakeTimeoutMs,
    );
    timer.unref();
    const onError = (err: Error) =>
      fail(identityError ?? new HboneError('tls', err.message, { destination, cause: err }));
    const onClose = () =>
      fail(new HboneError('tls', 'the peer closed during the TLS handshake', { destination }));
    tls.on('error', onError);
    tls.once('close', onClose);
    tls.once('secureConnect', () => {
      if (settled) return;
      if (tls.getProtocol() !== 'TLSv1.3') {
        fail(new HboneError('tls', `${tls.getProtocol()} is not TLSv1.3`, { destination }));
        return;
      }
      if (tls.alpnProtocol !== HBONE_ALPN) {
        fail(new HboneError('tls', `the peer did not agree to ALPN h2`, { destination }));
        return;
      }
      settled = true;
      clearTimeout(timer);
      tls.off('error', onError);
      tls.off('close', onClose);
      tls.on('error', ignore); // from here on the HTTP/2 session handles socket errors
      resolve(tls);
    });
  });
}
