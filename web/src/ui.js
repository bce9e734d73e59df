// Small shared pieces: the html tag, error and notice display, tables, a confirmation dialog.
import { h } from "preact";
import { useEffect, useId, useRef, useState } from "preact/hooks";
import htm from "htm";

export const html = htm.bind(h);

// An API error (or any error) shown as its message and code, never swallowed.
export function errorText(error) {
  if (!error) return "";
  if (error.code && error.message) return `${error.message} (${error.code})`;
  return error.shortMessage || error.message || String(error);
}

export function ErrorNote({ error, onDismiss }) {
  if (!error) return null;
  return html`<div class="error" role="alert">
    <span>${errorText(error)}</span>
    ${onDismiss && html`<button type="button" class="link" onClick=${onDismiss} aria-label="Dismiss">×</button>`}
  </div>`;
}

// Runs an async action, keeping its error (and its busy state) for display.
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  async function run(action) {
    setBusy(true);
    setError(null);
    try {
      return await action();
    } catch (err) {
      setError(err);
      return undefined;
    } finally {
      setBusy(false);
    }
  }
  return { busy, error, setError, run };
}

// Polls `load` every `interval` ms while mounted (and on `deps` change); keeps its error.
export function usePolled(load, interval, deps = []) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    let timer;
    async function step() {
      try {
        const value = await load();
        if (live) {
          setData(value);
          setError(null);
        }
      } catch (err) {
        if (live) setError(err);
      }
      if (live && interval) timer = setTimeout(step, interval);
    }
    step();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [...deps, tick]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

export function Table({ caption, label, columns, rows, empty = "Nothing yet.", rowKey }) {
  // a scrolling region the keyboard can reach (narrow screens scroll wide tables sideways)
  return html`<div class="table-wrap" role="region" tabindex="0" aria-label=${label || caption || "table"}>
    <table>
      ${caption && html`<caption>${caption}</caption>`}
      <thead>
        <tr>
          ${columns.map((c) => html`<th scope="col" class=${c.numeric ? "num" : ""}>${c.label}</th>`)}
        </tr>
      </thead>
      <tbody>
        ${rows.length === 0
          ? html`<tr><td colspan=${columns.length} class="empty">${empty}</td></tr>`
          : rows.map(
              (row, i) => html`<tr key=${rowKey ? rowKey(row) : i}>
                ${columns.map((c) => html`<td class=${c.numeric ? "num" : ""} data-label=${c.label}>${c.render(row)}</td>`)}
              </tr>`,
            )}
      </tbody>
    </table>
  </div>`;
}

// A modal confirmation (native <dialog>: focus trapped, Escape cancels).
export function Confirm({ open, title, children, confirmLabel = "Confirm", onConfirm, onCancel }) {
  const ref = useRef(null);
  const titleId = useId(); // one page may hold several dialogs
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return html`<dialog ref=${ref} aria-labelledby=${titleId} onCancel=${(e) => { e.preventDefault(); onCancel(); }}>
    <h2 id=${titleId}>${title}</h2>
    <div>${children}</div>
    <div class="actions">
      <button type="button" onClick=${onCancel}>Cancel</button>
      <button type="button" class="danger" onClick=${onConfirm}>${confirmLabel}</button>
    </div>
  </dialog>`;
}

export function Section({ title, id, children, actions, className = "" }) {
  return html`<section class=${`card ${className}`.trim()} aria-labelledby=${id}>
    <header class="card-head"><h2 id=${id}>${title}</h2>${actions}</header>
    ${children}
  </section>`;
}
