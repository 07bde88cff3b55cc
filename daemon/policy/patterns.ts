/** Istio's value patterns and address blocks, shared by sources, operations and conditions. */
import { type IpAddress, type IpBlock, ipBlockContains, parseIpBlock } from '../model/index.js';

/** Istio's string match: `*` alone (any non-empty value), `*suffix`, `prefix*`, or exact. */
export function wildcardMatch(pattern: string, value: string): boolean {
  if (pattern === '*') return value !== '';
  if (pattern.startsWith('*')) return value.endsWith(pattern.slice(1));
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  return value === pattern;
}

/** An attribute that is absent matches no pattern: `principals` fails, `notPrincipals` holds. */
export function anyPattern(patterns: readonly string[], value: string | undefined): boolean {
  return value !== undefined && patterns.some((p) => wildcardMatch(p, value));
}

const parsedBlocks = new WeakMap<readonly string[], (IpBlock | undefined)[]>();

function blocksOf(texts: readonly string[]): (IpBlock | undefined)[] {
  let blocks = parsedBlocks.get(texts);
  if (!blocks) {
    blocks = texts.map(parseIpBlock);
    parsedBlocks.set(texts, blocks);
  }
  return blocks;
}

/**
 * Whether the address is in one of the blocks (an IPv4-mapped IPv6 address counts as IPv4; the
 * families must agree otherwise); undefined when that cannot be told.
 */
export function inAnyBlock(
  texts: readonly string[],
  ip: IpAddress | undefined,
): boolean | undefined {
  if (!ip) return undefined;
  let unknown = false;
  for (const block of blocksOf(texts)) {
    if (!block) {
      unknown = true;
      continue;
    }
    if (ipBlockContains(block, ip)) return true;
  }
  return unknown ? undefined : false;
}
