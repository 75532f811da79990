/**
 * Audio helpers for tests and for the fake providers: 16-bit PCM generation,
 * loudness, framing into @livekit/rtc-node AudioFrames, WAV parsing, and real
 * synthesized speech from espeak-ng (Debian package `espeak-ng`, resampled with
 * `sox` when present).
 *
 * All PCM here is signed 16-bit, little-endian on the wire, mono unless said.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AudioFrame } from '@livekit/rtc-node';

/** A sine wave: `seconds` of `freq` Hz at `sampleRate`, peak `amplitude` (0..1 of full scale). */
export function sineWavePcm(seconds: number, sampleRate: number, freq = 440, amplitude = 0.3): Int16Array {
  const n = Math.max(0, Math.round(seconds * sampleRate));
  const out = new Int16Array(n);
  const peak = Math.max(0, Math.min(1, amplitude)) * 32767;
  // 5 ms fade in/out so the edges do not click.
  const fade = Math.min(Math.floor(sampleRate * 0.005), Math.floor(n / 2));
  for (let i = 0; i < n; i++) {
    let gain = 1;
    if (i < fade) gain = i / fade;
    else if (i >= n - fade) gain = (n - 1 - i) / fade;
    out[i] = Math.round(Math.sin((2 * Math.PI * freq * i) / sampleRate) * peak * gain);
  }
  return out;
}

/** `seconds` of digital silence. */
export function silencePcm(seconds: number, sampleRate: number): Int16Array {
  return new Int16Array(Math.max(0, Math.round(seconds * sampleRate)));
}

/** Root-mean-square level normalised to full scale: 0 is silence, ~0.707 a full-scale sine. */
export function rms(pcm: Int16Array): number {
  if (pcm.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < pcm.length; i++) {
    const v = pcm[i]! / 32768;
    sum += v * v;
  }
  return Math.sqrt(sum / pcm.length);
}

/** Interprets bytes as s16le samples (copies; tolerates odd offsets; a trailing odd byte is dropped). */
export function pcmFromBytes(bytes: Uint8Array): Int16Array {
  const n = Math.floor(bytes.byteLength / 2);
  const out = new Int16Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, n * 2);
  for (let i = 0; i < n; i++) out[i] = view.getInt16(i * 2, true);
  return out;
}

/** s16le bytes of the samples. */
export function pcmToBytes(pcm: Int16Array): Buffer {
  const out = Buffer.alloc(pcm.length * 2);
  for (let i = 0; i < pcm.length; i++) out.writeInt16LE(pcm[i]!, i * 2);
  return out;
}

export function concatPcm(...parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export function durationSeconds(pcm: Int16Array, sampleRate: number, channels = 1): number {
  return pcm.length / channels / sampleRate;
}

/** Splits mono PCM into AudioFrames of `frameMs` (the last one may be shorter). */
export function pcmToFrames(pcm: Int16Array, sampleRate: number, frameMs = 10): AudioFrame[] {
  const size = Math.max(1, Math.round((sampleRate * frameMs) / 1000));
  const frames: AudioFrame[] = [];
  for (let off = 0; off < pcm.length; off += size) {
    const chunk = pcm.slice(off, Math.min(off + size, pcm.length));
    frames.push(new AudioFrame(chunk, sampleRate, 1, chunk.length));
  }
  return frames;
}

/** Linear-interpolation resampler (good enough for test signals). */
export function resamplePcm(pcm: Int16Array, fromRate: number, toRate: number): Int16Array {
  if (fromRate === toRate || pcm.length === 0) return pcm.slice();
  const n = Math.max(1, Math.round((pcm.length * toRate) / fromRate));
  const out = new Int16Array(n);
  const step = fromRate / toRate;
  for (let i = 0; i < n; i++) {
    const x = i * step;
    const i0 = Math.floor(x);
    const i1 = Math.min(i0 + 1, pcm.length - 1);
    const t = x - i0;
    out[i] = Math.round(pcm[Math.min(i0, pcm.length - 1)]! * (1 - t) + pcm[i1]! * t);
  }
  return out;
}

export interface ParsedWav {
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  /** Mono s16 samples (channels averaged). */
  pcm: Int16Array;
}

/** Parses a PCM (format 1) 16-bit WAV file. Tolerates the bogus sizes of streamed WAV headers. */
export function parseWav(buf: Uint8Array): ParsedWav {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 12 || b.toString('ascii', 0, 4) !== 'RIFF' || b.toString('ascii', 8, 12) !== 'WAVE') {
    throw new Error('not a RIFF/WAVE file');
  }
  let off = 12;
  let fmt: { format: number; channels: number; sampleRate: number; bits: number } | undefined;
  while (off + 8 <= b.length) {
    const id = b.toString('ascii', off, off + 4);
    const size = b.readUInt32LE(off + 4);
    const body = off + 8;
    if (id === 'fmt ') {
      fmt = {
        format: b.readUInt16LE(body),
        channels: b.readUInt16LE(body + 2),
        sampleRate: b.readUInt32LE(body + 4),
        bits: b.readUInt16LE(body + 14),
      };
    } else if (id === 'data') {
      if (!fmt) throw new Error('WAV data chunk before fmt chunk');
      if (fmt.format !== 1 || fmt.bits !== 16) throw new Error(`unsupported WAV encoding (format ${fmt.format}, ${fmt.bits} bits)`);
      const end = Math.min(b.length, body + size);
      const all = pcmFromBytes(b.subarray(body, end));
      let pcm = all;
      if (fmt.channels > 1) {
        pcm = new Int16Array(Math.floor(all.length / fmt.channels));
        for (let i = 0; i < pcm.length; i++) {
          let s = 0;
          for (let c = 0; c < fmt.channels; c++) s += all[i * fmt.channels + c]!;
          pcm[i] = Math.round(s / fmt.channels);
        }
      }
      return { sampleRate: fmt.sampleRate, channels: fmt.channels, bitsPerSample: fmt.bits, pcm };
    }
    off = body + size + (size % 2);
  }
  throw new Error('WAV file has no data chunk');
}

/** A 44-byte-header WAV file of mono s16 PCM. */
export function wavFromPcm(pcm: Int16Array, sampleRate: number): Buffer {
  const data = pcmToBytes(pcm);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVE', 8, 'ascii');
  h.write('fmt ', 12, 'ascii');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(sampleRate, 24);
  h.writeUInt32LE(sampleRate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'ascii');
  h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}

/**
 * Stand-in "speech" for fake TTS engines: a tone whose length follows the text
 * (`msPerChar` per character, at least `minSeconds`, at most `maxSeconds`),
 * loud enough for any energy/RMS gate, with a slow amplitude wobble.
 */
export function toneForText(
  text: string,
  sampleRate: number,
  opts: { msPerChar?: number; maxSeconds?: number; minSeconds?: number; freq?: number } = {},
): Int16Array {
  const { msPerChar = 60, maxSeconds = 3, minSeconds = 0.1, freq = 440 } = opts;
  const seconds = Math.min(maxSeconds, Math.max(minSeconds, (text.length * msPerChar) / 1000));
  const pcm = sineWavePcm(seconds, sampleRate, freq, 0.3);
  for (let i = 0; i < pcm.length; i++) {
    pcm[i] = Math.round(pcm[i]! * (0.75 + 0.25 * Math.sin((2 * Math.PI * 4 * i) / sampleRate)));
  }
  return pcm;
}

function which(cmd: string): string | undefined {
  try {
    const out = execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return out || undefined;
  } catch {
    return undefined;
  }
}

let espeakPath: string | null | undefined;
let soxPath: string | null | undefined;

/** Whether `speechPcm` can run here (espeak-ng on PATH). */
export function hasEspeak(): boolean {
  if (espeakPath === undefined) espeakPath = which('espeak-ng') ?? null;
  return espeakPath !== null;
}

function hasSox(): boolean {
  if (soxPath === undefined) soxPath = which('sox') ?? null;
  return soxPath !== null;
}

const speechCache = new Map<string, Int16Array>();

/**
 * Real synthesized English speech for `text`, mono s16 at `sampleRate`, made
 * with espeak-ng (its native rate is 22050 Hz; resampled with sox, or linearly
 * if sox is missing). Throws if espeak-ng is not installed: install it with
 * `apt-get install -y espeak-ng sox`. Returns a fresh copy on every call.
 */
export function speechPcm(text: string, sampleRate = 16000): Int16Array {
  const key = `${sampleRate}\u0000${text}`;
  const cached = speechCache.get(key);
  if (cached) return cached.slice();
  if (!hasEspeak()) {
    throw new Error(
      'speechPcm needs espeak-ng, which is not installed: run `apt-get update && apt-get install -y espeak-ng sox`',
    );
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fake-speech-'));
  try {
    const wav = path.join(dir, 'speech.wav');
    execFileSync(espeakPath!, ['-v', 'en-us', '-s', '160', '-w', wav, '--', text], { stdio: ['ignore', 'ignore', 'pipe'] });
    let parsed = parseWav(readFileSync(wav));
    let pcm = parsed.pcm;
    if (parsed.sampleRate !== sampleRate) {
      if (hasSox()) {
        const out = path.join(dir, 'resampled.wav');
        execFileSync(soxPath!, [wav, '-r', String(sampleRate), '-c', '1', '-b', '16', '-e', 'signed-integer', out], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        parsed = parseWav(readFileSync(out));
        pcm = parsed.pcm;
      } else {
        pcm = resamplePcm(pcm, parsed.sampleRate, sampleRate);
      }
    }
    if (pcm.length === 0 || rms(pcm) < 0.005) throw new Error(`espeak-ng produced no audible speech for ${JSON.stringify(text)}`);
    speechCache.set(key, pcm);
    return pcm.slice();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
