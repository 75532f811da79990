// The playground page: start a session of a registered agent through /api, join its LiveKit room with
// the session's participant token, and show what happens. Plain ES module, no build step.
import { ParticipantKind, Room, RoomEvent, Track } from '/playground/vendor/livekit-client.mjs';

const KEY_STORAGE = 'agent-runtime.playground.apiKey';
const TRANSCRIPTION_TOPIC = 'lk.transcription';
// worker/turn-report.ts publishes each answered turn's latency here.
const TURN_TOPIC = 'agent-runtime.turn';
const TERMINAL = ['ended', 'failed', 'cancelled'];
/** RMS (full scale 1) above which the agent's audio counts as audible. */
const AGENT_AUDIBLE = 0.01;
/** RMS above which the microphone counts as speech; below it, room noise. */
const MIC_SPEECH = 0.02;
/** The agent's audio counts as a new reply after this long below the floor. */
const AGENT_GAP_MS = 400;
/** Without an agent in the room this long, the page says so (the dispatcher's join timeout decides the session's fate). */
const NO_AGENT_NOTICE_MS = 20_000;

const REASONS = {
  provider_not_configured:
    "The agent worker has no key for one of this agent's providers (OPENAI_API_KEY or DEEPGRAM_API_KEY), so the session failed: provider not configured.",
  agent_never_joined: 'No agent joined within the join timeout (AGENT_JOIN_TIMEOUT): is an agent worker running and connected to this LiveKit?',
  agent_not_found: 'The agent was deleted before its session started.',
  agent_version_not_found: 'That version of the agent does not exist.',
  config_unavailable: "The worker could not read the agent's config (MongoDB or Redis unavailable).",
  no_user: 'Nobody joined the room in time, so the agent left.',
  cancelled: 'The session was ended.',
};

const $ = (id) => document.getElementById(id);
const ui = {
  error: $('error'),
  notice: $('notice'),
  keyForm: $('key-form'),
  keyInput: $('api-key'),
  keyState: $('key-state'),
  forgetKey: $('forget-key'),
  agent: $('agent'),
  version: $('version'),
  micAtStart: $('mic-at-start'),
  start: $('start'),
  end: $('end'),
  sessionId: $('session-id'),
  status: $('status'),
  waiting: $('waiting'),
  transitions: $('transitions'),
  presence: $('agent-presence'),
  connection: $('connection'),
  micToggle: $('mic-toggle'),
  micMeter: $('mic-meter'),
  agentMeter: $('agent-meter'),
  enableAudio: $('enable-audio'),
  transcript: $('transcript'),
  turns: document.querySelector('#turns tbody'),
  players: $('players'),
};

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = !text;
}
function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = !text;
}

// ---- the API, with the key this tab keeps --------------------------------------------------------

const apiKey = () => sessionStorage.getItem(KEY_STORAGE);

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(method, path, body) {
  const key = apiKey();
  if (!key) throw new ApiError(401, 'enter an API key first');
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'the API did not answer');
  }
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    if (res.status === 401) forgetKey();
    const detail = res.status === 401 ? 'the API key was refused (401): check it against API_KEYS' : (json?.detail ?? `HTTP ${res.status}`);
    throw new ApiError(res.status, detail);
  }
  return json;
}

function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
  ui.keyForm.hidden = false;
  ui.keyState.hidden = true;
  ui.agent.disabled = true;
  ui.version.disabled = true;
  ui.start.disabled = true;
}

async function loadAgents() {
  const { items } = await api('GET', '/api/agents?limit=200');
  ui.agent.replaceChildren(
    ...(items.length ? items : [{ id: '', name: '(no agent registered)' }]).map((a) => new Option(a.id ? `${a.name} (${a.id})` : a.name, a.id)),
  );
  ui.agent.disabled = items.length === 0;
  ui.keyForm.hidden = true;
  ui.keyState.hidden = false;
  ui.start.disabled = items.length === 0 || session !== undefined;
  await loadVersions();
}

async function loadVersions() {
  const id = ui.agent.value;
  ui.version.replaceChildren(new Option('current', ''));
  ui.version.disabled = !id;
  if (!id) return;
  try {
    const { items } = await api('GET', `/api/agents/${encodeURIComponent(id)}/versions?limit=50`);
    for (const v of items) if (!v.deleted) ui.version.add(new Option(`v${v.version}`, String(v.version)));
  } catch (err) {
    showError(`Could not list the versions: ${err.message}`);
  }
}

ui.keyForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const key = ui.keyInput.value.trim();
  ui.keyInput.value = '';
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  showError('');
  try {
    await loadAgents();
  } catch (err) {
    forgetKey();
    showError(`Could not use this key: ${err.message}`);
  }
});
ui.forgetKey.addEventListener('click', () => forgetKey());
ui.agent.addEventListener('change', () => void loadVersions());

// ---- levels: WebAudio analysers on the microphone and on the agent's audio -----------------------

let audio; // AudioContext, made on the Start click (browsers let a page play sound after a gesture)
let micAnalyser;
let agentAnalysers = [];
let meterTimer;

function analyserFor(mediaStreamTrack) {
  const source = audio.createMediaStreamSource(new MediaStream([mediaStreamTrack]));
  const analyser = audio.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  return { analyser, buf: new Float32Array(analyser.fftSize), source };
}

function rms(a) {
  if (!a) return 0;
  a.analyser.getFloatTimeDomainData(a.buf);
  let sum = 0;
  for (const v of a.buf) sum += v * v;
  return Math.sqrt(sum / a.buf.length);
}

function setMeter(el, level) {
  // Speech sits around 0.01–0.3 RMS: a log scale shows both ends.
  const pct = level <= 0.001 ? 0 : Math.min(100, Math.max(0, ((Math.log10(level) + 3) / 3) * 100));
  el.style.width = `${pct.toFixed(0)}%`;
  el.dataset.level = level.toFixed(4);
}

// ---- per-turn latency, measured here --------------------------------------------------------------

const turnRows = [];
let measuredCount = 0;
let workerCount = 0;
const speech = { userVoiceAt: 0, awaitingReply: false, agentAudibleAt: 0, agentSpeaking: false, replyRow: undefined };

function turnRow(i) {
  while (turnRows.length <= i) {
    const tr = document.createElement('tr');
    tr.className = 'turn';
    tr.innerHTML = '<td class="n"></td><td class="measured">–</td><td class="worker">–</td><td class="parts">–</td>';
    tr.querySelector('.n').textContent = String(turnRows.length + 1);
    ui.turns.append(tr);
    turnRows.push(tr);
  }
  return turnRows[i];
}

function tick() {
  const now = performance.now();
  const mic = micEnabled ? rms(micAnalyser) : 0;
  const agent = Math.max(0, ...agentAnalysers.map(rms));
  setMeter(ui.micMeter, mic);
  setMeter(ui.agentMeter, agent);
  ui.agentMeter.dataset.peak = Math.max(Number(ui.agentMeter.dataset.peak), agent).toFixed(4);

  if (mic > MIC_SPEECH) {
    speech.userVoiceAt = now;
    speech.awaitingReply = true;
  }
  if (agent > AGENT_AUDIBLE) {
    // A reply's first audible frame, after the user spoke: end of the user's speech → this moment.
    if (!speech.agentSpeaking && speech.awaitingReply && now > speech.userVoiceAt) {
      const ms = Math.round(now - speech.userVoiceAt);
      const row = turnRow(measuredCount++);
      row.querySelector('.measured').textContent = String(ms);
      row.dataset.measuredMs = String(ms);
      speech.awaitingReply = false;
      speech.replyRow = row;
    }
    speech.agentSpeaking = true;
    speech.agentAudibleAt = now;
    // The reply's loudest moment, as this page heard it.
    if (speech.replyRow) speech.replyRow.dataset.replyPeak = Math.max(Number(speech.replyRow.dataset.replyPeak ?? 0), agent).toFixed(4);
  } else if (speech.agentSpeaking && now - speech.agentAudibleAt > AGENT_GAP_MS) {
    speech.agentSpeaking = false;
    speech.replyRow = undefined;
  }
}

function workerTurn(report) {
  if (typeof report?.seconds !== 'number') return;
  const row = turnRow(workerCount++);
  const ms = Math.round(report.seconds * 1000);
  row.querySelector('.worker').textContent = String(ms);
  row.dataset.workerMs = String(ms);
  const parts = Object.entries(report.parts ?? {}).map(([k, v]) => `${k.replace(/_/g, ' ')} ${Math.round(v * 1000)}`);
  row.querySelector('.parts').textContent = parts.join(', ') || '–';
}

// ---- transcript: lk.transcription text streams --------------------------------------------------

const segments = new Map();

function segmentLine(id, who) {
  let li = segments.get(id);
  if (!li) {
    li = document.createElement('li');
    li.className = `line ${who}`;
    li.dataset.who = who;
    li.dataset.final = 'false';
    const label = document.createElement('span');
    label.className = 'who';
    label.textContent = who === 'user' ? 'you' : 'agent';
    const text = document.createElement('span');
    text.className = 'text';
    li.append(label, text);
    ui.transcript.append(li);
    segments.set(id, li);
  }
  return li;
}

/**
 * The agents library sends the user's transcript as one stream per interim or final version of a
 * segment (each the whole text, the final one marked lk.transcription_final=true), and the agent's
 * words as one stream per segment that grows in step with its audio and is final when it closes.
 * Either way a stream's text replaces what its segment showed.
 */
async function onTranscription(reader, participantInfo) {
  const attrs = reader.info.attributes ?? {};
  const who = participantInfo.identity === room?.localParticipant.identity ? 'user' : 'agent';
  const id = attrs['lk.segment_id'] ?? reader.info.id;
  const li = segmentLine(id, who);
  const textEl = li.querySelector('.text');
  let text = '';
  try {
    for await (const chunk of reader) {
      text += chunk;
      if (li.dataset.final !== 'true') textEl.textContent = text;
      ui.transcript.scrollTop = ui.transcript.scrollHeight;
    }
  } catch {
    return; // cut off by a disconnect
  }
  if (attrs['lk.transcription_final'] === 'true' || who === 'agent') {
    textEl.textContent = text;
    li.dataset.final = 'true';
  }
}

// ---- the session ---------------------------------------------------------------------------------

let session; // { sessionId, livekitUrl }
let room;
let micEnabled = false;
let pollTimer;
let noAgentTimer;

function setStatus(view) {
  ui.status.textContent = view.status;
  ui.status.dataset.status = view.status;
  ui.waiting.textContent = view.waitingFor === 'capacity' ? '(waiting for a free agent worker slot: is a worker running?)' : '';
  ui.transitions.replaceChildren(
    ...(view.transitions ?? []).map((t) => {
      const li = document.createElement('li');
      li.textContent = `${t.status} ${new Date(t.at).toLocaleTimeString()}`;
      li.dataset.status = t.status;
      return li;
    }),
  );
  if (view.status === 'failed') showError(`Session failed: ${REASONS[view.failureReason] ?? view.failureReason ?? 'no reason given'} (${view.failureReason ?? 'unknown'})`);
}

async function poll() {
  if (!session) return;
  const id = session.sessionId;
  try {
    const view = await api('GET', `/api/sessions/${encodeURIComponent(id)}`);
    if (session?.sessionId !== id) return;
    setStatus(view);
    if (TERMINAL.includes(view.status)) return finish(view.status === 'failed' ? undefined : (REASONS[view.failureReason] ?? `The session is ${view.status}.`));
  } catch (err) {
    if (err.status === 401) return finish(undefined, `Session state unknown: ${err.message}`);
  }
  pollTimer = setTimeout(poll, 500);
}

function agentArrived(p) {
  clearTimeout(noAgentTimer);
  showNotice('');
  ui.presence.textContent = `joined: ${p.identity}`;
  ui.presence.dataset.present = 'true';
}

async function start() {
  showError('');
  showNotice('');
  const agentId = ui.agent.value;
  if (!agentId) return;
  ui.start.disabled = true;
  // Made inside the click: the page may play and analyse audio from now on.
  audio ??= new AudioContext();
  void audio.resume();
  let created;
  try {
    created = await api('POST', '/api/sessions', { agentId, ...(ui.version.value ? { version: Number(ui.version.value) } : {}) });
  } catch (err) {
    ui.start.disabled = !apiKey();
    return showError(`Could not start a session: ${err.message}`);
  }
  session = { sessionId: created.sessionId, livekitUrl: created.livekitUrl };
  resetView();
  ui.sessionId.textContent = created.sessionId;
  setStatus({ status: created.status, transitions: [] });
  ui.end.disabled = false;
  void poll();

  room = new Room({ adaptiveStream: false, dynacast: false });
  wireRoom(room);
  ui.connection.textContent = `connecting to ${created.livekitUrl}`;
  ui.connection.dataset.state = 'connecting';
  try {
    await room.connect(created.livekitUrl, created.participantToken);
  } catch (err) {
    ui.connection.textContent = 'unreachable';
    ui.connection.dataset.state = 'unreachable';
    // Nobody can join it: the session is ended rather than left waiting for a user.
    await endSession(`LiveKit unreachable at ${created.livekitUrl}: ${err?.message ?? err}. Is the LiveKit server running, and is LIVEKIT_PUBLIC_URL (or LIVEKIT_URL) reachable from this browser?`);
    return;
  }
  ui.connection.textContent = `connected to ${created.livekitUrl}`;
  ui.connection.dataset.state = 'connected';
  for (const p of room.remoteParticipants.values()) if (p.kind === ParticipantKind.AGENT) agentArrived(p);
  if (ui.presence.dataset.present !== 'true') {
    noAgentTimer = setTimeout(
      () => showNotice(`No agent has joined after ${NO_AGENT_NOTICE_MS / 1000} s. The session fails if none joins within the dispatcher's join timeout.`),
      NO_AGENT_NOTICE_MS,
    );
  }
  ui.micToggle.disabled = false;
  meterTimer ??= setInterval(tick, 20);
  if (ui.micAtStart.checked) await setMic(true);
}

function wireRoom(r) {
  r.registerTextStreamHandler(TRANSCRIPTION_TOPIC, (reader, info) => void onTranscription(reader, info));
  r.on(RoomEvent.ParticipantConnected, (p) => {
    if (p.kind === ParticipantKind.AGENT) agentArrived(p);
  });
  r.on(RoomEvent.ParticipantDisconnected, (p) => {
    if (p.kind !== ParticipantKind.AGENT) return;
    const others = [...r.remoteParticipants.values()].some((o) => o.kind === ParticipantKind.AGENT && o.identity !== p.identity);
    if (!others) {
      ui.presence.textContent = `left: ${p.identity}`;
      ui.presence.dataset.present = 'false';
    }
  });
  r.on(RoomEvent.TrackSubscribed, (track, _pub, p) => {
    if (track.kind !== Track.Kind.Audio) return;
    // Played by an element (Chromium gives WebAudio a remote track's samples only while one plays it), measured by an analyser.
    const el = track.attach();
    el.dataset.participant = p.identity;
    ui.players.append(el);
    agentAnalysers.push({ ...analyserFor(track.mediaStreamTrack), sid: track.sid });
  });
  r.on(RoomEvent.TrackUnsubscribed, (track) => {
    track.detach().forEach((el) => el.remove());
    agentAnalysers = agentAnalysers.filter((a) => a.sid !== track.sid);
  });
  r.on(RoomEvent.AudioPlaybackStatusChanged, () => {
    ui.enableAudio.hidden = r.canPlaybackAudio;
  });
  r.on(RoomEvent.DataReceived, (payload, _p, _kind, topic) => {
    if (topic !== TURN_TOPIC) return;
    try {
      workerTurn(JSON.parse(new TextDecoder().decode(payload)));
    } catch {
      /* not a turn report */
    }
  });
  r.on(RoomEvent.MediaDevicesError, (err) => {
    if (room === r) showError(micMessage(err));
  });
  r.on(RoomEvent.Disconnected, () => {
    if (room !== r) return;
    ui.connection.textContent = 'disconnected';
    ui.connection.dataset.state = 'disconnected';
    ui.micToggle.disabled = true;
  });
}

function micMessage(err) {
  const name = err?.name ?? '';
  if (name === 'NotAllowedError' || name === 'SecurityError') {
    return 'Microphone permission denied: allow this page to use the microphone (the browser asks, or its site settings), then turn the microphone on again. The agent can still be heard.';
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'No microphone found: plug one in, then turn the microphone on again.';
  if (name === 'NotReadableError') return 'The microphone is in use by another program or could not be opened.';
  return `The microphone could not be used: ${err?.message ?? err}`;
}

async function setMic(on) {
  const r = room;
  if (!r) return;
  try {
    const pub = await r.localParticipant.setMicrophoneEnabled(on);
    if (room !== r) return;
    micEnabled = on;
    if (on && pub?.track && !micAnalyser) micAnalyser = analyserFor(pub.track.mediaStreamTrack);
  } catch (err) {
    // A session that ended while the microphone was being published (it failed, or End was pressed) says why it
    // ended; the publish that its disconnect cut short is no microphone problem.
    if (room !== r) return;
    micEnabled = false;
    showError(micMessage(err));
  }
  ui.micToggle.textContent = micEnabled ? 'Microphone on' : 'Microphone off';
  ui.micToggle.setAttribute('aria-pressed', String(micEnabled));
  ui.micToggle.dataset.on = String(micEnabled);
}

async function endSession(reason) {
  const s = session;
  if (!s) return;
  ui.end.disabled = true;
  try {
    await api('DELETE', `/api/sessions/${encodeURIComponent(s.sessionId)}`);
  } catch (err) {
    // Already over (409) is what End wanted.
    if (err.status !== 409 && !reason) showError(`Could not end the session: ${err.message}`);
  }
  try {
    const view = await api('GET', `/api/sessions/${encodeURIComponent(s.sessionId)}`);
    setStatus(view);
  } catch {
    /* the state stays as last polled */
  }
  finish(undefined, reason);
}

function finish(notice, error) {
  clearTimeout(pollTimer);
  clearTimeout(noAgentTimer);
  session = undefined;
  const r = room;
  room = undefined;
  void r?.disconnect();
  if (ui.connection.dataset.state === 'connected' || ui.connection.dataset.state === 'connecting') {
    ui.connection.textContent = 'disconnected';
    ui.connection.dataset.state = 'disconnected';
  }
  micEnabled = false;
  micAnalyser?.source.disconnect();
  micAnalyser = undefined;
  agentAnalysers = [];
  ui.micToggle.disabled = true;
  ui.micToggle.textContent = 'Microphone off';
  ui.micToggle.dataset.on = 'false';
  ui.end.disabled = true;
  ui.start.disabled = !apiKey() || !ui.agent.value;
  if (notice) showNotice(notice);
  if (error) showError(error);
}

function resetView() {
  segments.clear();
  ui.transcript.replaceChildren();
  ui.turns.replaceChildren();
  turnRows.length = 0;
  measuredCount = 0;
  workerCount = 0;
  Object.assign(speech, { userVoiceAt: 0, awaitingReply: false, agentAudibleAt: 0, agentSpeaking: false, replyRow: undefined });
  ui.presence.textContent = 'not in the room';
  ui.presence.dataset.present = 'false';
  ui.agentMeter.dataset.peak = '0';
}

ui.start.addEventListener('click', () => void start());
ui.end.addEventListener('click', () => void endSession());
ui.micToggle.addEventListener('click', () => void setMic(!micEnabled));
ui.enableAudio.addEventListener('click', () => void room?.startAudio());
// Leaving the page ends its session rather than leaving an agent waiting for the user's return.
window.addEventListener('pagehide', () => {
  const key = apiKey();
  if (!session || !key) return;
  void fetch(`/api/sessions/${encodeURIComponent(session.sessionId)}`, { method: 'DELETE', headers: { authorization: `Bearer ${key}` }, keepalive: true }).catch(() => undefined);
});

// A key already kept by this tab (a reload): use it.
if (apiKey()) {
  loadAgents().catch((err) => showError(`Could not use the kept key: ${err.message}`));
}
