// Numbers as the API gives them: exact decimal strings, never floats. Token amounts on chain
// are integers in token units (BigInt), shown with the token's decimals and symbol.
import { formatUnits, parseUnits } from "viem";

// "1234.5000" -> "1,234.5" (grouping only; digits never rounded away)
export function decimal(value, { trim = true } = {}) {
  if (value === null || value === undefined || value === "") return "—";
  const text = String(value);
  if (!/^-?\d+(\.\d+)?$/.test(text)) return text;
  const negative = text.startsWith("-");
  let [whole, fraction = ""] = text.replace("-", "").split(".");
  if (trim) fraction = fraction.replace(/0+$/, "");
  whole = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (negative ? "-" : "") + whole + (fraction ? "." + fraction : "");
}

// An integer amount in token units (bigint or decimal string) with its symbol.
export function units(amount, decimals, symbol = "") {
  const text = formatUnits(BigInt(amount), decimals);
  return symbol ? `${decimal(text)} ${symbol}` : decimal(text);
}

// A decimal string typed by a person to token units, refusing digits finer than the token.
export function toUnits(text, decimals) {
  const clean = String(text).trim();
  if (!/^\d+(\.\d+)?$/.test(clean)) throw new Error(`"${text}" is not a positive decimal number`);
  const fraction = clean.split(".")[1] ?? "";
  if (fraction.length > decimals) {
    throw new Error(`"${text}" has more than ${decimals} decimals`);
  }
  return parseUnits(clean, decimals);
}

// Exact decimal arithmetic for the page's own sums (payoffs, net prices): scaled BigInts.
const SCALE = 18;
export function toScaled(value) {
  return parseUnits(String(value), SCALE);
}
export function fromScaled(value) {
  return formatUnits(value, SCALE);
}

export function shortHash(hash) {
  if (!hash) return "—";
  return hash.length > 14 ? `${hash.slice(0, 8)}…${hash.slice(-6)}` : hash;
}

export function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString([], { hour12: false });
}
