import { html, Section } from "../ui.js";

export function TradingPanel() {
  return html`<${Section} title="Trade" id="trade"><p>…</p><//>`;
}
