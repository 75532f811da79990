import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

function random36(n: number): string {
  let s = '';
  for (const b of randomBytes(n)) s += ALPHABET[b % 36];
  return s;
}

/**
 * Ids that sort by creation time (for cursors), are never integer-like and
 * have no `:` (BullMQ job ids), and carry 62 bits of randomness.
 */
export function newId(prefix: 'ses' | 'bat'): string {
  return `${prefix}_${Date.now().toString(36).padStart(9, '0')}${random36(12)}`;
}

export const ID_PATTERN = /^(ses|bat)_[0-9a-z]{21}$/;
