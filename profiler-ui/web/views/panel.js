import { child } from './dom.js';

/**
 * Panel chrome: a titled section with an optional subtitle, tools on the right and a PNG export button.
 * @param {HTMLElement} parent
 * @param {{ id?: string, title: string, subtitle?: string, exportPng?: (() => Promise<void>) | null, className?: string }} options
 */
export function createPanel(parent, { id, title, subtitle = '', exportPng = null, className = '' }) {
  const el = document.createElement('section');
  el.className = `panel ${className}`.trim();
  if (id) el.id = id;
  el.innerHTML = `<header class="panel-head"><h2>${title}</h2><span class="sub">${subtitle}</span><span class="tools"></span></header><div class="panel-body"></div>`;
  const tools = child(el, '.tools', HTMLElement);
  if (exportPng) {
    const b = document.createElement('button');
    b.className = 'ghost';
    b.textContent = 'PNG';
    b.title = `Save "${title}" as a PNG`;
    b.dataset.export = id ?? title;
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        await exportPng();
      } finally {
        b.disabled = false;
      }
    });
    tools.appendChild(b);
  }
  parent.appendChild(el);
  return { el, body: child(el, '.panel-body', HTMLElement), tools, sub: child(el, '.sub', HTMLElement) };
}
