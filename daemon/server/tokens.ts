/**
 * One-time join tokens (`meshctl token create`). A token is `<id>.<secret>`: the id names the
 * record and may appear in logs; the secret is 256 random bits that only the operator sees.
 * The store keeps sha256(secret) (compared in constant time), the node name and the expiry in
 * one JSON file (mode 0600, written atomically: temp file, fsync, rename, fsync of the dir).
 *
 * A token is used up only when a certificate was issued for it: `redeem` runs the issuing work
 * while holding the store's lock and marks the token used (on disk) before the result is
 * returned, so a Join refused for a bad CSR leaves the token valid, and two Joins racing with
 * one token get one certificate. Expired and used records are kept RETAIN_MS past their expiry
 * (so a late caller hears "expired" or "already used", not "unknown"), then pruned.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MeshdError } from '../errors.js';

export const TOKENS_FILE = 'join-tokens.json';
export const RETAIN_MS = 24 * 3600_000;

const ID_BYTES = 9; // 12 base64url characters
const SECRET_BYTES = 32; // 43 base64url characters
const TOKEN = /^([A-Za-z0-9_-]{12})\.([A-Za-z0-9_-]{43})$/;

interface TokenRecord {
  id: string;
  node: string;
  /** hex sha256 of the secret's base64url text. */
  secretSha256: string;
  createdAt: string;
  expiresAt: string;
  usedAt?: string;
}

interface TokenFile {
  version: 1;
  tokens: TokenRecord[];
}

export interface CreatedToken {
  /** The only place the secret exists in clear: hand it to the operator, never log it. */
  token: string;
  id: string;
  node: string;
  expiresAt: Date;
}

export interface TokenInfo {
  id: string;
  node: string;
  expiresAt: Date;
}

const refused = (message: string) =>
  new MeshdError('MESHD_E_JOIN_TOKEN', `join token refused: ${message}`);

const stateError = (message: string, cause?: unknown) =>
  new MeshdError('MESHD_E_SERVER_STATE', message, { cause });

const sha256 = (text: string) => createHash('sha256').update(text).digest();

function validRecord(r: unknown): r is TokenRecord {
  if (!r || typeof r !== 'object') return false;
  const t = r as Record<string, unknown>;
  return (
    typeof t.id === 'string' &&
    typeof t.node === 'string' &&
    typeof t.secretSha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(t.secretSha256) &&
    typeof t.expiresAt === 'string' &&
    !Number.isNaN(Date.parse(t.expiresAt)) &&
    (t.usedAt === undefined || typeof t.usedAt === 'string')
  );
}

export class JoinTokenStore {
  readonly path: string;
  readonly #now: () => number;
  #records: TokenRecord[];
  /** Serializes every read-modify-write of the records and the file. */
  #lock: Promise<unknown> = Promise.resolve();

  private constructor(path: string, records: TokenRecord[], now: () => number) {
    this.path = path;
    this.#records = records;
    this.#now = now;
  }

  /** Opens (or starts) the store in `dataDir`; a corrupt file is an error, not an empty store. */
  static async open(dataDir: string, now: () => number): Promise<JoinTokenStore> {
    const path = join(dataDir, TOKENS_FILE);
    try {
      await mkdir(dataDir, { recursive: true, mode: 0o700 });
    } catch (cause) {
      throw stateError(`cannot create the data directory ${dataDir}`, cause);
    }
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw stateError(`cannot read ${path}`, cause);
      }
    }
    let records: TokenRecord[] = [];
    if (text !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (cause) {
        throw stateError(`${path} is not valid JSON (move it away to start with no tokens)`, cause);
      }
      const tokens = (parsed as Partial<TokenFile> | null)?.tokens;
      if (!Array.isArray(tokens) || !tokens.every(validRecord)) {
        throw stateError(
          `${path} is not a meshd join-token file (move it away to start with no tokens)`,
        );
      }
      records = tokens;
    }
    const store = new JoinTokenStore(path, records, now);
    await store.#exclusive(async () => {
      if (store.#prune()) await store.#save();
    });
    return store;
  }

  /** A new token for `node`, valid for `ttlMs`. */
  create(node: string, ttlMs: number): Promise<CreatedToken> {
    return this.#exclusive(async () => {
      const now = this.#now();
      const id = randomBytes(ID_BYTES).toString('base64url');
      const secret = randomBytes(SECRET_BYTES).toString('base64url');
      const record: TokenRecord = {
        id,
        node,
        secretSha256: sha256(secret).toString('hex'),
        createdAt: new Date(now).toISOString(),
        expiresAt: new Date(now + ttlMs).toISOString(),
      };
      this.#prune();
      this.#records.push(record);
      try {
        await this.#save();
      } catch (err) {
        this.#records = this.#records.filter((r) => r !== record);
        throw err;
      }
      return { token: `${id}.${secret}`, id, node, expiresAt: new Date(record.expiresAt) };
    });
  }

  /**
   * Checks `token`, runs `work` for its node, and marks the token used once `work` succeeded
   * and that is on disk. Refusals (MESHD_E_JOIN_TOKEN) name the token id, never the secret.
   * If `work` throws, the token stays valid.
   */
  redeem<T>(token: string, work: (info: TokenInfo) => Promise<T>): Promise<T> {
    return this.#exclusive(async () => {
      const now = this.#now();
      const record = this.#check(token, now);
      const result = await work({
        id: record.id,
        node: record.node,
        expiresAt: new Date(record.expiresAt),
      });
      record.usedAt = new Date(this.#now()).toISOString();
      try {
        await this.#save();
      } catch (err) {
        delete record.usedAt;
        throw err;
      }
      return result;
    });
  }

  /** Valid (unused, unexpired) tokens, without secrets. */
  pending(): TokenInfo[] {
    const now = this.#now();
    return this.#records
      .filter((r) => !r.usedAt && Date.parse(r.expiresAt) > now)
      .map((r) => ({ id: r.id, node: r.node, expiresAt: new Date(r.expiresAt) }));
  }

  #check(token: string, now: number): TokenRecord {
    const m = TOKEN.exec(token.trim());
    if (!m) {
      throw refused(
        'it is not a meshd join token (expected <id>.<secret> as printed by "meshctl token create")',
      );
    }
    const [, id = '', secret = ''] = m;
    const record = this.#records.find((r) => r.id === id);
    const matches =
      record !== undefined &&
      timingSafeEqual(sha256(secret), Buffer.from(record.secretSha256, 'hex'));
    if (!record || !matches) {
      throw refused(
        `token ${id} is unknown to this server (never issued here, mistyped, or pruned a day after it expired)`,
      );
    }
    if (record.usedAt) {
      throw refused(
        `token ${id} for node ${record.node} was already used at ${record.usedAt}; tokens are one-time, make a new one with "meshctl token create --node ${record.node}"`,
      );
    }
    if (Date.parse(record.expiresAt) <= now) {
      throw refused(
        `token ${id} for node ${record.node} expired at ${record.expiresAt}; make a new one with "meshctl token create --node ${record.node}"`,
      );
    }
    return record;
  }

  /** Drops records whose expiry is more than RETAIN_MS past; true if any were dropped. */
  #prune(): boolean {
    const cutoff = this.#now() - RETAIN_MS;
    const before = this.#records.length;
    this.#records = this.#records.filter((r) => Date.parse(r.expiresAt) > cutoff);
    return this.#records.length !== before;
  }

  async #save(): Promise<void> {
    const file: TokenFile = { version: 1, tokens: this.#records };
    const tmp = `${this.path}.tmp-${process.pid}`;
    try {
      const handle = await open(tmp, 'w', 0o600);
      try {
        await handle.chmod(0o600);
        await handle.writeFile(`${JSON.stringify(file, null, 2)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, this.path);
      const dir = await open(dirname(this.path), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch (cause) {
      await rm(tmp, { force: true }).catch(() => {});
      throw stateError(`cannot write ${this.path}`, cause);
    }
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => {});
    return run;
  }
}
