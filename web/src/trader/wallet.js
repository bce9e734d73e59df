import { html, Section } from "../ui.js";

export function WalletPanel({ wallet }) {
  return html`<${Section} title="Wallet" id="wallet"><p class="mono">${wallet || "no wallet yet"}</p><//>`;
}
