/**
 * Argument checks for daemon/net. Bad arguments are programming errors, not operational ones,
 * so they throw TypeError/RangeError (like Node's own APIs) before anything reaches the kernel,
 * naming the function, the argument and the value.
 */
import { isIP } from 'node:net';
import type { IpFamily } from './types.js';

const MAX_U32 = 0xffff_ffff;

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

export function assertFamily(where: string, family: unknown): asserts family is IpFamily {
  if (family !== 4 && family !== 6) {
    throw new TypeError(`${where}: family must be 4 or 6, got ${show(family)}`);
  }
}

export function assertUint(where: string, name: string, value: unknown, max: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${where}: ${name} must be an integer 0..${max}, got ${show(value)}`);
  }
}

export function assertIntIn(
  where: string,
  name: string,
  value: unknown,
  min: number,
  max: number,
): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${where}: ${name} must be an integer ${min}..${max}, got ${show(value)}`);
  }
}

export function assertMark(where: string, mark: unknown): asserts mark is number {
  assertUint(where, 'mark', mark, MAX_U32);
}

/** SO_LINGER seconds; the kernel caps longer waits anyway, and one is a bug in the caller. */
export function assertLinger(
  where: string,
  name: string,
  seconds: unknown,
): asserts seconds is number {
  assertUint(where, name, seconds, 65_535);
}

export function assertPort(where: string, name: string, port: unknown): asserts port is number {
  assertUint(where, name, port, 65_535);
}

export function assertFd(where: string, fd: unknown): asserts fd is number {
  assertUint(where, 'fd', fd, 0x7fff_ffff);
}

/** A numeric literal of the socket's family: hostnames would be resolved in the wrong netns. */
export function assertIpOfFamily(where: string, name: string, value: unknown, family: IpFamily) {
  if (typeof value !== 'string' || isIP(value) !== family) {
    throw new TypeError(
      `${where}: ${name} must be an IPv${family} address literal (family ${family}), got ${show(value)}`,
    );
  }
}

export function assertOptionalBoolean(where: string, name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') {
    throw new TypeError(`${where}: ${name} must be a boolean, got ${show(value)}`);
  }
}

/** An absolute path to a netns file (/var/run/netns/NAME, /proc/PID/ns/net). */
export function assertNetnsFile(where: string, path: unknown): asserts path is string {
  if (typeof path !== 'string' || !path.startsWith('/') || path.includes('\0')) {
    throw new TypeError(
      `${where}: netns must be an absolute path such as /var/run/netns/NAME or /proc/PID/ns/net ` +
        `(use netnsPath(name) for a name), got ${show(path)}`,
    );
  }
}

/** Names `ip netns add` creates and CNI runtimes use (cni-1234…); never a path component. */
const NETNS_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;

export function assertNetnsName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !NETNS_NAME.test(name)) {
    throw new TypeError(
      `netnsPath: namespace name must be 1-255 characters of letters, digits, '_', '.', '-' ` +
        `starting with a letter or digit, got ${show(name)}`,
    );
  }
}
