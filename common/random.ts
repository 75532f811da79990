import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

/** `n` random characters of 0-9a-z (cryptographic randomness, each byte taken mod 36). */
export function random36(n: number): string {
  let s = '';
  for (const b of randomBytes(n)) s += ALPHABET[b % 36];
  return s;
}
