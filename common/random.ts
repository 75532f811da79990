import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

// Random bytes are drawn from a pool refilled 4 KiB at a time: a 10,000-session batch makes two ids per
// session, and a call into the CSPRNG for each cost it a tenth of a second.
const POOL_SIZE = 4096;
let pool = Buffer.alloc(0);
let used = 0;

/** `n` random characters of 0-9a-z (cryptographic randomness, each byte taken mod 36). */
export function random36(n: number): string {
  if (used + n > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(Math.max(POOL_SIZE, n)));
    used = 0;
  }
  let s = '';
  for (let i = used; i < used + n; i++) s += ALPHABET[pool[i]! % 36];
  used += n;
  return s;
}
