/**
 * HTTPRoute, a Gateway API subset for waypoints: routes for a Service (its parent), matched
 * by path, method and headers, split over weighted backends, with timeouts and retries.
 */
import { z } from 'zod';
import {
  dnsLabel,
  duration,
  int,
  namespacedMetadata,
  port,
  resourceSchema,
  rule,
} from '../common.js';

export const HTTP_METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];
export const PATH_MATCH_TYPES = ['Exact', 'PathPrefix'] as const;

const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

const hostname = rule(z.string(), (v) =>
  v.length <= 253 && HOSTNAME.test(v)
    ? undefined
    : `"${v}" is not a hostname (lowercase DNS name, optionally starting with "*.")`,
);

const parentRef = z.strictObject({
  kind: z.literal('Service').default('Service'),
  name: dnsLabel(),
  port: port().optional(),
});

const match = z.strictObject({
  path: z
    .strictObject({
      type: z.enum(PATH_MATCH_TYPES).default('PathPrefix'),
      value: rule(z.string(), (v) =>
        v.startsWith('/') ? undefined : `"${v}" must start with "/"`,
      ),
    })
    .optional(),
  method: z.enum(HTTP_METHODS).optional(),
  headers: z
    .array(
      z.strictObject({
        name: rule(z.string(), (v) =>
          HEADER_NAME.test(v) ? undefined : `"${v}" is not an HTTP header name`,
        ),
        value: z.string(),
      }),
    )
    .optional(),
});

const backendRef = z.strictObject({
  name: dnsLabel(),
  port: port(),
  weight: int(0, 1_000_000).default(1),
});

const routeRule = z.strictObject({
  matches: z.array(match).optional(),
  backendRefs: z.array(backendRef).optional(),
  timeouts: z.strictObject({ request: duration().optional() }).optional(),
  retry: z
    .strictObject({
      attempts: int(0, 100),
      perTryTimeout: duration().optional(),
    })
    .optional(),
});

export const httpRouteSpec = z.strictObject({
  parentRefs: z.array(parentRef).min(1),
  hostnames: z.array(hostname).optional(),
  rules: z.array(routeRule).min(1),
});

export const httpRouteSchema = resourceSchema('HTTPRoute', namespacedMetadata(), httpRouteSpec);

export type HTTPRoute = z.output<typeof httpRouteSchema>;
export type HTTPRouteRule = z.output<typeof routeRule>;
export type HTTPRouteMatch = z.output<typeof match>;
export type HTTPBackendRef = z.output<typeof backendRef>;
