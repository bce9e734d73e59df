// The console's layout pieces: a panel (a card, optionally as wide as the page) and a table
// with a test id (the shared Table is itself a focusable, named region that scrolls sideways
// on a narrow screen).
import { html, Table } from "../ui.js";

export function Panel({ title, id, wide = false, actions, children }) {
  return html`<section class=${wide ? "card full" : "card"} aria-labelledby=${id}>
    <header class="card-head"><h2 id=${id}>${title}</h2>${actions}</header>
    ${children}
  </section>`;
}

export function ScrollTable({ testid, ...props }) {
  return html`<div data-testid=${testid}><${Table} ...${props} /></div>`;
}
