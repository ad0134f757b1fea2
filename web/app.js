import { api, apiKey, mediaURL, onKeyNeeded, setApiKey } from './api.js';
import { parseCSV } from './csv.js';
import { lang, setLang, t, translate } from './i18n.js';

// TI2V-5B size presets (Sources/ReelCore/VideoPresets.swift); the server resolves the names.
const PRESETS = [
  ['720p', 1280, 704], ['720p-portrait', 704, 1280], ['540p', 960, 544], ['540p-portrait', 544, 960],
  ['square', 704, 704], ['small', 512, 288],
];
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const $ = (selector) => document.querySelector(selector);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (value !== undefined && value !== null && value !== false) node[key] = value;
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

const state = { styles: [], loras: [], jobs: new Map(), batches: new Map(), workers: [], csv: null, videoURLs: new Map(),
  image: null };

// ---- API key -----------------------------------------------------------------------------------------------
let keyWaiters = [];
onKeyNeeded(() => new Promise((resolve) => {
  keyWaiters.push(resolve);
  const dialog = $('#key-dialog');
  if (!dialog.open) { dialog.showModal(); $('#key-input').focus(); }
}));
$('#key-form').addEventListener('submit', () => {
  const key = $('#key-input').value.trim();
  setApiKey(key);
  const waiters = keyWaiters;
  keyWaiters = [];
  waiters.forEach((resolve) => resolve(key));
  startFeed();
});

// ---- Submit one prompt -------------------------------------------------------------------------------------
// With an image the list starts with `auto`: the server picks the preset nearest the image's aspect ratio.
function fillSizes() {
  const select = $('#size');
  const current = select.value;
  select.replaceChildren(
    ...(state.image ? [el('option', { value: 'auto', textContent: t('sizeAuto') })] : []),
    ...PRESETS.map(([name, w, h]) => el('option', { value: name, textContent: `${name} (${w}×${h})` })),
    el('option', { value: 'custom', textContent: t('custom') }));
  select.value = current && (current !== 'auto' || state.image) ? current : '720p';
}

function fillStyles() {
  const select = $('#style');
  const current = select.value;
  select.replaceChildren(el('option', { value: '', textContent: t('noStyle') }),
    ...state.styles.map((s) => el('option', {
      value: s.name, textContent: lang === 'zh' && s.label_zh ? `${s.label_zh} (${s.name})` : s.name })));
  select.value = current;
}

function updatePreview() {
  const style = state.styles.find((s) => s.name === $('#style').value);
  const prompt = $('#prompt').value;
  $('#final-prompt').textContent = style ? style.prompt.replaceAll('{prompt}', prompt) : prompt;
  $('#final-negative').textContent = style ? style.negative_prompt : '';
  $('#custom-size').hidden = $('#size').value !== 'custom';
}

const randomSeed = () => Math.floor(Math.random() * 2 ** 31);
const number = (selector) => ($(selector).value === '' ? undefined : Number($(selector).value));

function formSpec() {
  const size = $('#size').value === 'custom' ? `${$('#width').value}x${$('#height').value}` : $('#size').value;
  const spec = {
    prompt: $('#prompt').value, style: $('#style').value || undefined, size,
    seconds: number('#seconds'), seed: number('#seed'), steps: number('#steps'), guidance: number('#guidance'),
  };
  if (state.image) Object.assign(spec, { image: state.image.id, fit: $('#fit').value });
  const loras = [...document.querySelectorAll('#lora-rows .lora-row')].map((row) => ({
    name: row.querySelector('.lora-name').value,
    scale: Number(row.querySelector('.lora-scale').value),
    expert: row.querySelector('.lora-expert').value,
  })).filter((l) => l.name);
  if (loras.length) spec.loras = loras;
  if ($('#recipe').value) {
    spec.recipe = $('#recipe').value;
    // The recipe fixes its steps and guidance.
    delete spec.steps;
    delete spec.guidance;
  }
  return spec;
}

// ---- LoRAs ----------------------------------------------------------------------------------------------------
// One row per LoRA: a library file (GET /v1/loras, those this server's model takes), its scale and its expert.
function addLoRARow(lora = {}) {
  const usable = state.loras.filter((l) => l.fits_server);
  const name = el('select', { className: 'lora-name', ariaLabel: t('loraName') },
    ...usable.map((l) => el('option', { value: l.name, textContent: `${l.name} (${l.format}, rank ${l.rank})` })));
  if (lora.name) name.value = lora.name;
  const scale = el('input', { className: 'lora-scale', type: 'number', step: '0.05', min: '-10', max: '10',
    value: String(lora.scale ?? 1), ariaLabel: t('loraScale') });
  const expert = el('select', { className: 'lora-expert', ariaLabel: t('loraExpert') },
    ...['both', 'high', 'low'].map((e) => el('option', { value: e, textContent: t(`expert.${e}`) })));
  expert.value = lora.expert || 'both';
  const remove = el('button', { type: 'button', className: 'secondary', textContent: t('removeLora') });
  const row = el('div', { className: 'lora-row' }, name, scale, expert, remove);
  remove.addEventListener('click', () => row.remove());
  $('#lora-rows').append(row);
}

function fillLoRAs() {
  const usable = state.loras.filter((l) => l.fits_server);
  $('#lora-add').hidden = usable.length === 0;
  $('#lora-hint').hidden = usable.length > 0;
}
$('#lora-add').addEventListener('click', () => addLoRARow());

function showMessage(selector, text, ok) {
  const node = $(selector);
  node.textContent = text;
  node.className = `message ${ok ? 'ok' : 'error'}`;
}

async function submitJob(spec) {
  const job = await api('/v1/jobs', { method: 'POST', body: spec });
  state.jobs.set(job.id, job);
  render();
  return job;
}

$('#job-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    const job = await submitJob(formSpec());
    showMessage('#submit-message', t('submitted', { id: job.id }), true);
  } catch (error) {
    showMessage('#submit-message', error.field ? `${error.field}: ${error.message}` : error.message, false);
  }
});
$('#dice').addEventListener('click', () => { $('#seed').value = randomSeed(); });
for (const id of ['#prompt', '#style', '#size']) $(id).addEventListener('input', updatePreview);

// ---- The image a video starts from -------------------------------------------------------------------------
// A picked or dropped file is uploaded at once (POST /v1/images, its bytes as the body); the job then names the
// returned id. The server tells the format from the bytes, so a file of another type is sent as octet-stream and
// refused with the server's own message.
let imageUploads = 0; // an answer for a file picked before the latest one is ignored
let sizeBeforeImage = null; // the size chosen before the image switched it to auto

async function setImageFile(file) {
  if (!file) return;
  const ticket = ++imageUploads;
  showMessage('#image-message', t('uploading', { name: file.name }), true);
  $('#submit-button').disabled = true;
  try {
    const type = file.type.startsWith('image/') ? file.type : 'application/octet-stream';
    const image = await api('/v1/images', { method: 'POST', body: file, type });
    if (ticket !== imageUploads) return;
    showMessage('#image-message', '', true);
    const url = URL.createObjectURL(file);
    useImage({ id: image.id, width: image.width, height: image.height, name: file.name, url });
  } catch (error) {
    if (ticket !== imageUploads) return;
    showMessage('#image-message', `${file.name}: ${error.message}`, false);
  } finally {
    if (ticket === imageUploads) $('#submit-button').disabled = false;
  }
}

function useImage(image) {
  const select = $('#size');
  const wasAuto = select.value === 'auto';
  if (state.image) URL.revokeObjectURL(state.image.url);
  if (image && !wasAuto) sizeBeforeImage = select.value;
  state.image = image;
  fillSizes();
  if (image) select.value = 'auto';
  else if (wasAuto && sizeBeforeImage) select.value = sizeBeforeImage;
  renderImage();
  updatePreview();
}

function renderImage() {
  const image = state.image;
  $('#image-chosen').hidden = !image;
  if (!image) { $('#image-preview').removeAttribute('src'); return; }
  $('#image-preview').src = image.url;
  $('#image-preview').alt = t('imageAlt', { name: image.name });
  $('#image-name').textContent = image.name;
  $('#image-size').textContent = t('imagePixels', { w: image.width, h: image.height });
}

$('#image-file').addEventListener('change', () => {
  setImageFile($('#image-file').files[0]);
  $('#image-file').value = ''; // so that the same file can be picked again after removing it
});
$('#image-remove').addEventListener('click', () => {
  imageUploads += 1;
  showMessage('#image-message', '', true);
  $('#submit-button').disabled = false;
  useImage(null);
  $('#image-file').focus();
});
{
  const drop = $('#image-drop');
  const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes('Files');
  for (const kind of ['dragenter', 'dragover']) {
    drop.addEventListener(kind, (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = 'copy';
      drop.classList.add('dragging');
    });
  }
  drop.addEventListener('dragleave', (event) => {
    if (!drop.contains(event.relatedTarget)) drop.classList.remove('dragging');
  });
  drop.addEventListener('drop', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    drop.classList.remove('dragging');
    setImageFile(event.dataTransfer.files[0]);
  });
}

// ---- CSV batches -------------------------------------------------------------------------------------------
$('#csv-file').addEventListener('change', async () => {
  const file = $('#csv-file').files[0];
  if (!file) return;
  const text = await file.text();
  state.csv = { text, table: parseCSV(text), errors: new Map(), checked: false };
  showMessage('#csv-message', '', true);
  renderCSV();
});

function renderCSV() {
  const csv = state.csv;
  const table = $('#csv-table');
  if (!csv) { table.replaceChildren(); return; }
  const head = el('tr', {}, el('th', { textContent: t('row') }), csv.table.header.map((name) => el('th', { textContent: name })),
    el('th', { textContent: t('status') }));
  const rows = csv.table.rows.map((row) => {
    const errors = csv.errors.get(row.number) || [];
    const status = errors.length
      ? el('td', { className: 'error' }, errors.map((e) => el('div', { textContent: e.column ? `${e.column}: ${e.message}` : e.message })))
      : el('td', { className: 'ok', textContent: csv.checked ? t('rowOK') : '' });
    return el('tr', { className: errors.length ? 'bad' : '', dataset: { row: row.number } },
      el('td', { textContent: row.number }), row.fields.map((f) => el('td', { textContent: f })), status);
  });
  table.replaceChildren(el('thead', {}, head), el('tbody', {}, rows));
  const valid = csv.table.rows.length - new Set(csv.errors.keys()).size;
  $('#queue-all').hidden = csv.queued || csv.errors.size > 0 || csv.table.rows.length === 0;
  $('#queue-valid').hidden = !csv.checked || csv.queued || csv.errors.size === 0 || valid <= 0;
  $('#queue-valid').textContent = t('queueValid', { n: valid });
}

// "Queue all" sends atomic=true: the server checks every row and queues nothing unless all are valid, so a file
// with a bad row is a dry run that returns each bad row's errors. "Queue the valid rows" then sends it without.
async function sendBatch(atomic) {
  const csv = state.csv;
  try {
    const answer = await api(atomic ? '/v1/batches?atomic=true' : '/v1/batches', {
      method: 'POST', body: csv.text, type: 'text/csv; charset=utf-8' });
    csv.checked = true;
    csv.queued = true;
    csv.errors = groupErrors(answer.rejected);
    addBatch(answer.id);
    showMessage('#csv-message', t('batchQueued', { id: answer.id }), true);
  } catch (error) {
    if (error.body && Array.isArray(error.body.rejected)) {
      csv.checked = true;
      csv.errors = groupErrors(error.body.rejected);
      showMessage('#csv-message', t('rowsBad', { n: csv.errors.size }), false);
    } else {
      showMessage('#csv-message', error.field ? `${error.field}: ${error.message}` : error.message, false);
    }
  }
  renderCSV();
}

function groupErrors(rejected = []) {
  const errors = new Map();
  for (const r of rejected) errors.set(r.row, [...(errors.get(r.row) || []), r]);
  return errors;
}
$('#queue-all').addEventListener('click', () => sendBatch(true));
$('#queue-valid').addEventListener('click', () => sendBatch(false));

// ---- Batches submitted in this session ---------------------------------------------------------------------
function addBatch(id) {
  if (!id) return;
  state.batches.set(id, null);
  pollBatch(id);
}

async function pollBatch(id) {
  try {
    const batch = await api(`/v1/batches/${encodeURIComponent(id)}`);
    state.batches.set(id, batch);
    renderBatches();
    if (batch.done) return;
  } catch { /* try again */ }
  setTimeout(() => pollBatch(id), 2000);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m` : s >= 60 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${s}s`;
}

function renderBatches() {
  $('#batches-section').hidden = state.batches.size === 0;
  $('#batches').replaceChildren(...[...state.batches].map(([id, b]) => {
    if (!b) return el('div', { className: 'batch', textContent: id });
    const accepted = b.jobs.length;
    const finished = (b.counts.succeeded || 0) + (b.counts.failed || 0) + (b.counts.cancelled || 0);
    return el('div', { className: 'batch', dataset: { batch: id } },
      el('div', {}, el('b', { textContent: id }), ` ${finished}/${accepted}`, b.done ? ` · ${t('done')}` : '',
        ` · ${t('timeLeft')}: ${duration(b.seconds_left)}`,
        ` · ${t('videosPerHour')}: ${b.videos_per_hour ? b.videos_per_hour.toFixed(1) : '–'}`),
      el('progress', { max: Math.max(accepted, 1), value: finished }),
      el('div', { className: 'hint', textContent: Object.entries(b.counts).filter(([, n]) => n > 0)
        .map(([s, n]) => `${t(`state.${s}`)} ${n}`).join(' · ') }));
  }));
}

// ---- Queue and gallery -------------------------------------------------------------------------------------
async function cancelJob(id) {
  try { state.jobs.set(id, await api(`/v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE' })); } catch { /* shown by refresh */ }
  render();
}

function progressCell(job) {
  if (job.state !== 'running' || !job.progress) return el('td', { textContent: job.state === 'succeeded' ? '100%' : '' });
  const p = job.progress;
  return el('td', {}, el('progress', { max: p.total || 1, value: p.step }), ` ${p.stage} ${p.step}/${p.total}`);
}

function renderQueue() {
  const jobs = [...state.jobs.values()].sort((a, b) => b.created_at.localeCompare(a.created_at)).slice(0, 50);
  $('#no-jobs').hidden = jobs.length > 0;
  $('#queue tbody').replaceChildren(...jobs.map((job) => el('tr', { dataset: { job: job.id, state: job.state } },
    el('td', { className: 'id', textContent: job.id }),
    el('td', { className: 'prompt', textContent: job.spec.user_prompt || job.spec.prompt, title: job.spec.prompt }),
    el('td', { className: `state state-${job.state}`, textContent: t(`state.${job.state}`),
      title: job.error ? job.error.message : '' }),
    progressCell(job),
    el('td', { className: 'action' }, TERMINAL.has(job.state) ? null
      : el('button', { className: 'secondary cancel', textContent: t('cancel'), onclick: () => cancelJob(job.id) })))));
}

function memory(w) {
  if (!w.total_memory_bytes) return '–';
  const gib = (bytes) => (bytes / 2 ** 30).toFixed(1);
  return `${gib(w.total_memory_bytes - (w.free_memory_bytes || 0))} / ${gib(w.total_memory_bytes)} GiB`;
}

function renderWorkers() {
  $('#workers tbody').replaceChildren(...state.workers.map((w) => el('tr', { dataset: { slot: w.slot } },
    el('td', { textContent: w.slot }), el('td', { textContent: w.device }),
    el('td', { textContent: t(`worker.${w.state}`), title: w.last_error || '' }), el('td', { textContent: memory(w) }),
    el('td', { textContent: w.job || '' }),
    el('td', { textContent: w.total_steps ? `${w.stage || ''} ${w.step ?? 0}/${w.total_steps}` : '' }),
    el('td', { textContent: w.steps_per_second ? w.steps_per_second.toFixed(2) : '' }))));
}

const SPEC_KEYS = ['prompt', 'negative_prompt', 'style', 'size', 'seconds', 'frames', 'fps', 'steps', 'guidance', 'seed',
  'model', 'image', 'last_image', 'fit', 'loras', 'recipe', 'recipe_loras'];

async function rerun(job) {
  const s = job.spec;
  await submitJob({
    prompt: s.user_prompt ?? s.prompt, negative_prompt: s.style ? undefined : s.negative_prompt || undefined,
    style: s.style || undefined, size: s.size, frames: s.frames, fps: s.fps, steps: s.steps, guidance: s.guidance,
    model: s.model, interpolate: s.interpolate > 1 ? s.interpolate : undefined, seed: randomSeed(),
    image: s.image || undefined, last_image: s.last_image || undefined, fit: s.image ? s.fit || undefined : undefined,
    ...rerunLoRAs(s),
  });
}

// A recipe's pair comes first in the job's LoRAs: it is given back as the recipe's, the rest as LoRAs.
function rerunLoRAs(s) {
  const loras = (s.loras || []).map((l) => ({ name: l.name, scale: l.scale, expert: l.expert }));
  if (!s.recipe) return loras.length ? { loras } : {};
  const [high, low, ...rest] = loras;
  return { recipe: s.recipe, recipe_loras: { high: high.name, low: low.name }, steps: undefined, guidance: undefined,
    ...(rest.length ? { loras: rest } : {}) };
}

// A spec value as text: LoRAs in the CSV column's form (name:scale@expert), anything else as it is.
function specText(key, value) {
  if (key !== 'loras') return String(value);
  return value.map((l) => `${l.name}${l.scale !== 1 ? `:${l.scale}` : ''}${l.expert !== 'both' ? `@${l.expert}` : ''}`)
    .join(';');
}

function videoCard(job) {
  const video = el('video', { controls: true, muted: true, loop: true, preload: 'auto', playsInline: true });
  const link = el('a', { textContent: t('download'), download: `${job.id}.mp4`, dataset: { i18n: 'download' } });
  mediaURL(job.outputs.video_url).then((url) => { video.src = url; link.href = url; }).catch(() => {});
  const spec = el('dl', {}, SPEC_KEYS.filter((k) => job.spec[k] !== null && job.spec[k] !== '' && job.spec[k] !== undefined)
    .filter((k) => !(Array.isArray(job.spec[k]) && job.spec[k].length === 0))
    .flatMap((k) => [el('dt', { textContent: k }), el('dd', { textContent: specText(k, job.spec[k]) })]));
  return el('div', { className: 'card', dataset: { job: job.id } }, video,
    el('div', { className: 'actions' }, link,
      el('button', { className: 'secondary rerun', textContent: t('rerun'), dataset: { i18n: 'rerun' },
        onclick: () => rerun(job) })),
    el('details', {}, el('summary', { textContent: t('parameters'), dataset: { i18n: 'parameters' } }), spec));
}

function renderGallery() {
  const done = [...state.jobs.values()].filter((j) => j.state === 'succeeded' && j.outputs)
    .sort((a, b) => (b.finished_at || '').localeCompare(a.finished_at || ''));
  $('#no-videos').hidden = done.length > 0;
  const gallery = $('#gallery');
  const existing = new Map([...gallery.children].map((card) => [card.dataset.job, card]));
  // Cards are kept, not rebuilt, so playing videos are not interrupted by updates.
  gallery.replaceChildren(...done.map((job) => existing.get(job.id) || videoCard(job)));
}

function render() { renderQueue(); renderGallery(); }

// ---- Live updates ------------------------------------------------------------------------------------------
async function refreshJob(id) {
  try { state.jobs.set(id, await api(`/v1/jobs/${encodeURIComponent(id)}`)); render(); } catch { /* gone */ }
}

async function refreshJobs() {
  try {
    const page = await api('/v1/jobs?limit=100');
    for (const job of page.data) state.jobs.set(job.id, job);
    render();
  } catch { /* next time */ }
}

async function refreshWorkers() {
  try { state.workers = (await api('/v1/workers')).data; renderWorkers(); } catch { /* next time */ }
}

let source = null, pollTimer = null;
// EventSource cannot send an Authorization header, and the server takes no key in the query, so with a key the
// page polls GET /v1/jobs every 2 s instead; without one it follows GET /v1/events.
function startFeed() {
  if (source) { source.close(); source = null; }
  clearInterval(pollTimer);
  refreshJobs();
  if (apiKey()) {
    pollTimer = setInterval(refreshJobs, 2000);
    $('#feed').dataset.i18n = 'polling';
  } else {
    source = new EventSource('/v1/events');
    for (const kind of ['queued', 'started', 'progress', 'succeeded', 'failed', 'cancelled', 'requeued']) {
      source.addEventListener(kind, (message) => onEvent(JSON.parse(message.data)));
    }
    source.onerror = () => {
      // A 401 or a dropped stream: fall back to polling, which asks for a key when one is needed.
      if (source && source.readyState === EventSource.CLOSED) { source = null; pollTimer = setInterval(refreshJobs, 2000); }
    };
    source.onopen = () => refreshJobs();
    $('#feed').dataset.i18n = 'live';
  }
  translate(document);
}

function onEvent(event) {
  const job = state.jobs.get(event.job);
  if (!job || event.kind === 'succeeded' || event.kind === 'queued') { refreshJob(event.job); return; }
  job.state = event.state;
  if (event.kind === 'progress' && event.progress) job.progress = event.progress;
  if (TERMINAL.has(event.state)) refreshJob(event.job);
  renderQueue();
}

// ---- Start -------------------------------------------------------------------------------------------------
function applyLanguage() {
  translate(document);
  fillSizes();
  fillStyles();
  renderImage();
  renderCSV();
  renderBatches();
  renderWorkers();
  render();
}

$('#lang').value = lang;
$('#lang').addEventListener('change', () => { setLang($('#lang').value); applyLanguage(); });
applyLanguage();
updatePreview();
api('/v1/styles').then((list) => { state.styles = list.data; fillStyles(); updatePreview(); }).catch(() => {});
api('/v1/loras').then((list) => { state.loras = list.data; fillLoRAs(); }).catch(() => {});
startFeed();
refreshWorkers();
setInterval(refreshWorkers, 2000);
document.body.dataset.ready = 'true';
