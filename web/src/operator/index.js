import { html } from "../ui.js";

export function OperatorScreen() {
  return html`<h1>Operator</h1>`;
}
