/** Namespace: a name and labels (enrollment, default waypoint); no spec. */
import { z } from 'zod';
import { clusterMetadata, resourceSchema } from '../common.js';

export const namespaceSchema = resourceSchema(
  'Namespace',
  clusterMetadata(),
  z.strictObject({}).optional(),
);

export type Namespace = z.output<typeof namespaceSchema>;
