// Interface strings in English and Chinese. Elements carry data-i18n="key" (text) or data-i18n-placeholder.
const strings = {
  en: {
    title: 'Reel', tagline: 'Video generation queue',
    submitTitle: 'New video', prompt: 'Prompt', promptPlaceholder: 'a red fox trotting through snow',
    style: 'Style', noStyle: 'No style', finalPrompt: 'Final prompt', negativePrompt: 'Negative prompt',
    size: 'Size', custom: 'Custom', width: 'Width', height: 'Height', seconds: 'Seconds', seed: 'Seed',
    seedRandom: 'random', dice: 'Random', steps: 'Steps', guidance: 'Guidance', submit: 'Generate',
    submitted: 'Queued job {id}',
    image: 'Image (optional)', chooseImage: 'Choose an image…',
    imageHint: 'or drop one here: PNG, JPEG or WebP. The video starts from it.', uploading: 'Uploading {name}…',
    imagePixels: '{w} × {h} px', imageAlt: 'The chosen image, {name}', removeImage: 'Remove image', fit: 'Fit',
    'fit.cover': 'cover (crop to fill)', 'fit.contain': 'contain (black bars)', 'fit.stretch': 'stretch',
    sizeAuto: 'auto (from the image)',
    loras: 'LoRAs', addLora: 'Add a LoRA', noLoras: 'The LoRA library is empty.', recipe: 'Recipe', noRecipe: 'none',
    'recipe.lightning': 'lightning-4step (4 steps, its LoRA pair)', loraName: 'LoRA', loraScale: 'Scale',
    loraExpert: 'Expert', removeLora: 'Remove', 'expert.both': 'both experts', 'expert.high': 'high-noise expert',
    'expert.low': 'low-noise expert',
    csvTitle: 'Batch from CSV', csvHint: 'Columns: prompt, negative_prompt, style, size, seconds, steps, seed…',
    row: 'Row', status: 'Status', queueAll: 'Queue all', queueValid: 'Queue the {n} valid rows',
    rowOK: 'ok', rowsBad: 'Invalid rows: {n}. Nothing was queued.', batchQueued: 'Queued batch {id}',
    queueTitle: 'Queue', job: 'Job', state: 'State', progress: 'Progress', cancel: 'Cancel', noJobs: 'No jobs yet.',
    workersTitle: 'GPU slots', slot: 'Slot', device: 'Device', memory: 'Memory', stepsPerSecond: 'Steps/s',
    batchesTitle: 'Batches', timeLeft: 'Time left', videosPerHour: 'Videos/hour', done: 'done',
    galleryTitle: 'Gallery', noVideos: 'Finished videos appear here.', download: 'Download',
    rerun: 'Re-run with new seed', parameters: 'Parameters',
    keyTitle: 'API key required', keyHint: 'This server requires an API key. It is kept for this browser session.',
    keySave: 'Use key', live: 'live', polling: 'polling',
    'state.queued': 'queued', 'state.running': 'running', 'state.succeeded': 'succeeded', 'state.failed': 'failed',
    'state.cancelled': 'cancelled',
    'worker.starting': 'starting', 'worker.ready': 'ready', 'worker.busy': 'busy', 'worker.restarting': 'restarting',
    'worker.unhealthy': 'unhealthy', 'worker.stopped': 'stopped',
  },
  zh: {
    title: 'Reel', tagline: '视频生成队列',
    submitTitle: '新建视频', prompt: '提示词', promptPlaceholder: '一只红狐狸在雪地里小跑',
    style: '风格', noStyle: '无风格', finalPrompt: '最终提示词', negativePrompt: '反向提示词',
    size: '尺寸', custom: '自定义', width: '宽', height: '高', seconds: '时长（秒）', seed: '种子',
    seedRandom: '随机', dice: '随机', steps: '步数', guidance: '引导系数', submit: '生成',
    submitted: '已加入队列：{id}',
    image: '图片（可选）', chooseImage: '选择图片…',
    imageHint: '或把图片拖到这里：PNG、JPEG 或 WebP，视频从这张图片开始。', uploading: '正在上传 {name}…',
    imagePixels: '{w} × {h} 像素', imageAlt: '所选图片：{name}', removeImage: '移除图片', fit: '适配方式',
    'fit.cover': '裁剪填满（cover）', 'fit.contain': '完整显示，加黑边（contain）', 'fit.stretch': '拉伸（stretch）',
    sizeAuto: '自动（按图片比例）',
    loras: 'LoRA', addLora: '添加 LoRA', noLoras: 'LoRA 库为空。', recipe: '配方', noRecipe: '无',
    'recipe.lightning': 'lightning-4step（4 步，配套 LoRA）', loraName: 'LoRA', loraScale: '强度',
    loraExpert: '专家', removeLora: '移除', 'expert.both': '两个专家', 'expert.high': '高噪声专家',
    'expert.low': '低噪声专家',
    csvTitle: '从 CSV 批量生成', csvHint: '列：prompt、negative_prompt、style、size、seconds、steps、seed…',
    row: '行', status: '状态', queueAll: '全部加入队列', queueValid: '将 {n} 个有效行加入队列',
    rowOK: '有效', rowsBad: '{n} 行无效，未加入任何任务。', batchQueued: '已加入批次 {id}',
    queueTitle: '队列', job: '任务', state: '状态', progress: '进度', cancel: '取消', noJobs: '还没有任务。',
    workersTitle: 'GPU 槽位', slot: '槽位', device: '设备', memory: '显存', stepsPerSecond: '步/秒',
    batchesTitle: '批次', timeLeft: '剩余时间', videosPerHour: '视频/小时', done: '完成',
    galleryTitle: '作品', noVideos: '完成的视频会显示在这里。', download: '下载',
    rerun: '换个种子重新生成', parameters: '参数',
    keyTitle: '需要 API 密钥', keyHint: '此服务器需要 API 密钥，密钥仅保存在本次浏览器会话中。',
    keySave: '使用密钥', live: '实时', polling: '轮询',
    'state.queued': '排队中', 'state.running': '运行中', 'state.succeeded': '已完成', 'state.failed': '失败',
    'state.cancelled': '已取消',
    'worker.starting': '启动中', 'worker.ready': '就绪', 'worker.busy': '忙碌', 'worker.restarting': '重启中',
    'worker.unhealthy': '异常', 'worker.stopped': '已停止',
  },
};

const STORE = 'reel.lang';
export let lang = localStorage.getItem(STORE) || (navigator.language.startsWith('zh') ? 'zh' : 'en');
if (!strings[lang]) lang = 'en';

export function t(key, values = {}) {
  const text = strings[lang][key] ?? strings.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ''));
}

export function setLang(next) {
  lang = strings[next] ? next : 'en';
  localStorage.setItem(STORE, lang);
  translate(document);
}

export function translate(root) {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
}
