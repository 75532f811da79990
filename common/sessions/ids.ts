import { random36 } from '../random.js';

/**
 * Ids that sort by creation time (for cursors), are never integer-like and
 * have no `:` (BullMQ job ids), and carry 62 bits of randomness.
 */
export function newId(prefix: 'ses' | 'bat'): string {
  return `${prefix}_${Date.now().toString(36).padStart(9, '0')}${random36(12)}`;
}

export const ID_PATTERN = /^(ses|bat)_[0-9a-z]{21}$/;
