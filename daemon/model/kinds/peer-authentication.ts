/** PeerAuthentication: whether plaintext inbound is accepted (PERMISSIVE) or refused (STRICT). */
import { z } from 'zod';
import { namespacedMetadata, resourceSchema } from '../common.js';
import { labelSelectorSchema } from '../selector.js';

export const MTLS_MODES = ['STRICT', 'PERMISSIVE'] as const;
export type MtlsMode = (typeof MTLS_MODES)[number];

export const peerAuthenticationSpec = z.strictObject({
  selector: labelSelectorSchema.optional(),
  mtls: z.strictObject({ mode: z.enum(MTLS_MODES) }),
});

export const peerAuthenticationSchema = resourceSchema(
  'PeerAuthentication',
  namespacedMetadata(),
  peerAuthenticationSpec,
);

export type PeerAuthentication = z.output<typeof peerAuthenticationSchema>;
