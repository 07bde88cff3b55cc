export type IpFamily = 4 | 6;

/** The destination a captured connection was sent to before REDIRECT (from conntrack). */
export type OrigDst = {
  readonly address: string;
  readonly port: number;
  readonly family: IpFamily;
} & { readonly __brand: 'OrigDst' };
