/**
 * A tiny speech recognizer for the STT fakes: it knows a fixed set of phrases,
 * synthesized with espeak-ng when it is made, and names the one an utterance
 * sounds like, or "unknown". So a test whose audio is wrong (noise, silence,
 * another phrase, a broken pipeline) gets a wrong transcript instead of the
 * scripted one.
 *
 * Each utterance becomes a sequence of spectral-shape frames (log energy in
 * mel-like bands, 32 ms windows every 16 ms, each frame's mean removed so
 * loudness does not count), trimmed to where it is within 35 dB of its
 * loudest frame, and is compared with every phrase by dynamic time warping
 * (which absorbs a different speaking pace, and the codec and resampling of a
 * trip through WebRTC). The best phrase wins if it is close enough and
 * clearly closer than the next.
 */
import { speechPcm } from './audio.js';

const RATE = 16000;
const WINDOW = 512;
const HOP = 256;
const BANDS = 16;
/** A pause longer than this (16 ms frames: 320 ms) ends an utterance. */
const GAP_FRAMES = 20;
/** Average per-step DTW distance under which a phrase is recognized. */
const ACCEPT = 5.5;
/** The best phrase must be this much closer than the second best. */
const MARGIN = 0.6;

export const UNKNOWN_TRANSCRIPT = 'unknown';

/** Real FFT magnitudes of one window (radix-2, in place on copies). */
function magnitudes(frame: Float64Array): Float64Array {
  const n = frame.length;
  const re = Float64Array.from(frame);
  const im = new Float64Array(n);
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = (-2 * Math.PI) / len;
    for (let i = 0; i < n; i += len) {
      for (let k = 0; k < len / 2; k++) {
        const wr = Math.cos(ang * k);
        const wi = Math.sin(ang * k);
        const ar = re[i + k + len / 2]! * wr - im[i + k + len / 2]! * wi;
        const ai = re[i + k + len / 2]! * wi + im[i + k + len / 2]! * wr;
        re[i + k + len / 2] = re[i + k]! - ar;
        im[i + k + len / 2] = im[i + k]! - ai;
        re[i + k] = re[i + k]! + ar;
        im[i + k] = im[i + k]! + ai;
      }
    }
  }
  const out = new Float64Array(n / 2);
  for (let i = 0; i < n / 2; i++) out[i] = Math.hypot(re[i]!, im[i]!);
  return out;
}

/** Band edges (FFT bins) spaced on the mel scale from 100 Hz to 7 kHz. */
const EDGES = (() => {
  const mel = (f: number) => 2595 * Math.log10(1 + f / 700);
  const hz = (m: number) => 700 * (10 ** (m / 2595) - 1);
  const lo = mel(100);
  const hi = mel(7000);
  return Array.from({ length: BANDS + 1 }, (_, i) => Math.round((hz(lo + ((hi - lo) * i) / BANDS) * WINDOW) / RATE));
})();

const HANN = Float64Array.from({ length: WINDOW }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (WINDOW - 1)));

/** A windowed-sinc low-pass below `cutoff` Hz at `rate`: what the decimation to 16 kHz keeps must not alias. */
function lowPass(x: Float64Array, rate: number, cutoff: number): Float64Array {
  const taps = 63;
  const fc = cutoff / rate;
  const h = Float64Array.from({ length: taps }, (_, i) => {
    const k = i - (taps - 1) / 2;
    const sinc = k === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * k) / (Math.PI * k);
    return sinc * (0.54 - 0.46 * Math.cos((2 * Math.PI * i) / (taps - 1)));
  });
  const out = new Float64Array(x.length);
  for (let n = 0; n < x.length; n++) {
    let acc = 0;
    for (let i = 0; i < taps; i++) {
      const j = n - i + (taps - 1) / 2;
      if (j >= 0 && j < x.length) acc += h[i]! * x[j]!;
    }
    out[n] = acc;
  }
  return out;
}

function resample(pcm: Int16Array, from: number): Float64Array {
  const raw = Float64Array.from(pcm, (v) => v / 32768);
  if (from === RATE) return raw;
  const src = from > RATE ? lowPass(raw, from, 7600) : raw;
  const n = Math.floor((src.length * RATE) / from);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const x = (i * from) / RATE;
    const a = Math.floor(x);
    const t = x - a;
    out[i] = src[a]! * (1 - t) + (src[a + 1] ?? src[a]!) * t;
  }
  return out;
}

/** The utterance's frames: spectral shape per 16 ms, only where it is within 35 dB of its loudest. */
export function features(pcm: Int16Array, sampleRate: number): Float64Array[] {
  const x = resample(pcm, sampleRate);
  const frames: { shape: Float64Array; energy: number }[] = [];
  const w = new Float64Array(WINDOW);
  for (let off = 0; off + WINDOW <= x.length; off += HOP) {
    for (let i = 0; i < WINDOW; i++) w[i] = x[off + i]! * HANN[i]!;
    const mag = magnitudes(w);
    const shape = new Float64Array(BANDS);
    let total = 0;
    for (let b = 0; b < BANDS; b++) {
      let e = 0;
      for (let k = EDGES[b]!; k < Math.max(EDGES[b + 1]!, EDGES[b]! + 1); k++) e += mag[k]! * mag[k]!;
      total += e;
      shape[b] = Math.log(e + 1e-9);
    }
    const mean = shape.reduce((a, v) => a + v, 0) / BANDS;
    for (let b = 0; b < BANDS; b++) shape[b] = shape[b]! - mean;
    frames.push({ shape, energy: 10 * Math.log10(total + 1e-12) });
  }
  // The utterance is the longest stretch of sound whose pauses are shorter than GAP_FRAMES: a click or the
  // tail of something else before or after it, across a real pause, is not part of it.
  const loudest = Math.max(...frames.map((f) => f.energy), -Infinity);
  const voiced = frames.map((f) => f.energy > loudest - 35);
  let best: [number, number] | undefined;
  for (let i = 0; i < voiced.length; ) {
    if (!voiced[i]) {
      i++;
      continue;
    }
    let end = i;
    let j = i;
    while (j < voiced.length && j - end <= GAP_FRAMES) {
      if (voiced[j]) end = j;
      j++;
    }
    if (!best || end - i > best[1] - best[0]) best = [i, end];
    i = end + 1;
  }
  return best ? frames.slice(best[0], best[1] + 1).map((f) => f.shape) : [];
}

function dist(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s);
}

/** Dynamic time warping, the average distance along the best path (a path at most twice as long as the other side). */
export function dtw(a: Float64Array[], b: Float64Array[]): number {
  if (!a.length || !b.length) return Infinity;
  if (a.length > 2 * b.length || b.length > 2 * a.length) return Infinity;
  const m = b.length;
  let prev = new Float64Array(m + 1).fill(Infinity);
  let prevLen = new Float64Array(m + 1);
  prev[0] = 0;
  for (let i = 1; i <= a.length; i++) {
    const cur = new Float64Array(m + 1).fill(Infinity);
    const curLen = new Float64Array(m + 1);
    for (let j = 1; j <= m; j++) {
      const d = dist(a[i - 1]!, b[j - 1]!);
      const options: [number, number][] = [
        [prev[j - 1]!, prevLen[j - 1]!],
        [prev[j]!, prevLen[j]!],
        [cur[j - 1]!, curLen[j - 1]!],
      ];
      let best = options[0]!;
      for (const o of options) if (o[0] < best[0]) best = o;
      cur[j] = best[0] + d;
      curLen[j] = best[1] + 1;
    }
    prev = cur;
    prevLen = curLen;
  }
  return prev[m]! / prevLen[m]!;
}

export class PhraseRecognizer {
  private readonly templates: { text: string; frames: Float64Array[] }[];
  /** Every decision, for tests: the phrase chosen and each phrase's distance. */
  readonly decisions: { text: string; distances: Record<string, number> }[] = [];

  constructor(readonly phrases: string[]) {
    this.templates = phrases.map((text) => ({ text, frames: features(speechPcm(text, RATE), RATE) }));
  }

  recognize(pcm: Int16Array, sampleRate: number): string {
    const f = features(pcm, sampleRate);
    const scored = this.templates.map((t) => ({ text: t.text, d: dtw(f, t.frames) })).sort((x, y) => x.d - y.d);
    const [best, next] = scored;
    const ok = best !== undefined && best.d <= ACCEPT && (next === undefined || best.d <= MARGIN * next.d);
    const text = ok ? best.text : UNKNOWN_TRANSCRIPT;
    this.decisions.push({ text, distances: Object.fromEntries(scored.map((s) => [s.text, Math.round(s.d * 1000) / 1000])) });
    return text;
  }
}
