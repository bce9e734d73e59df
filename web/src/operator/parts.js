// The console's layout pieces: a panel (the shared Section, optionally as wide as the page)
// and a table with a test id (the shared Table is itself a focusable, named region that
// scrolls sideways on a narrow screen).
import { html, Section, Table } from "../ui.js";

export function Panel({ wide = false, ...section }) {
  return html`<${Section} ...${section} className=${wide ? "full" : ""} />`;
}

export function ScrollTable({ testid, ...props }) {
  return html`<div data-testid=${testid}><${Table} ...${props} /></div>`;
}
