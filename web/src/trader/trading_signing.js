// EIP-712 orders and strategies, built in the page from the ticket's own fields, as
// isthmus-client builds them (a port of client/isthmus_client/signing.py and nonces.py):
//
//   EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)
//   Order(bytes32 instrument,bool is_buy,uint256 amount,uint256 limit_price,uint256 nonce,uint64 deadline)
//   Leg(bytes32 instrument,bool is_buy,uint256 ratio)
//   Strategy(Leg[] legs,uint256 amount,int256 limit_net_price,uint256 nonce,uint64 deadline)
//
// name "Isthmus", version "1", the trader's MarginWallet as verifyingContract. Amounts are
// token units (BigInt, exact: a digit finer than the token is refused, never rounded). Before
// the wallet signs, the gateway is asked what it would have signed (POST
// /v1/orders/typed-data); any difference and nothing is signed.
import { encodeAbiParameters, getAddress, hexToBigInt, keccak256, recoverTypedDataAddress, sliceHex } from "viem";
import { MARGIN_WALLET_ABI, SETTLEMENT_ABI } from "../contracts.js";
import { publicClient, walletClient } from "../session.js";

export const KIND_SPOT = 0;
export const KIND_OPTION = 1;
export const SIGNATURE_LIFETIME = 7 * 86_400; // seconds, as the client: without expires_at
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

const DOMAIN_FIELDS = [
  { name: "name", type: "string" },
  { name: "version", type: "string" },
  { name: "chainId", type: "uint256" },
  { name: "verifyingContract", type: "address" },
];
const ORDER_FIELDS = [
  { name: "instrument", type: "bytes32" },
  { name: "is_buy", type: "bool" },
  { name: "amount", type: "uint256" },
  { name: "limit_price", type: "uint256" },
  { name: "nonce", type: "uint256" },
  { name: "deadline", type: "uint64" },
];
const LEG_FIELDS = [
  { name: "instrument", type: "bytes32" },
  { name: "is_buy", type: "bool" },
  { name: "ratio", type: "uint256" },
];
const STRATEGY_FIELDS = [
  { name: "legs", type: "Leg[]" },
  { name: "amount", type: "uint256" },
  { name: "limit_net_price", type: "int256" },
  { name: "nonce", type: "uint256" },
  { name: "deadline", type: "uint64" },
];

export class NotSignable extends Error {}

// `value` (a decimal string, may be negative) in a token's smallest units, exactly.
export function tokenUnits(value, decimals, what) {
  const text = String(value).trim();
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (!match) throw new NotSignable(`${what} "${value}" is not a decimal number`);
  const [, sign, whole, fraction = ""] = match;
  const significant = fraction.replace(/0+$/, "");
  if (significant.length > decimals) {
    throw new NotSignable(`${what} ${text} is finer than the token's ${decimals} decimals`);
  }
  const units = BigInt(whole + significant.padEnd(decimals, "0"));
  return sign ? -units : units;
}

// keccak256(abi.encode(uint8 kind, address base, address quote, uint256 strike, uint64 expiry,
// bool is_call)), as Settlement.instrument_id computes it.
export function instrumentId(kind, base, quote, strike = 0n, expiry = 0n, isCall = false) {
  return keccak256(
    encodeAbiParameters(
      [{ type: "uint8" }, { type: "address" }, { type: "address" }, { type: "uint256" }, { type: "uint64" }, { type: "bool" }],
      [kind, getAddress(base), getAddress(quote), BigInt(strike), BigInt(expiry), Boolean(isCall)],
    ),
  );
}

// The instrument's id on chain, from the tokens of GET /v1/chain.
export function onchainId(instrument, tokens) {
  const base = tokens[instrument.base];
  const quote = tokens[instrument.quote];
  if (!base || !quote) {
    throw new NotSignable(`${instrument.symbol}: token ${base ? instrument.quote : instrument.base} is not on chain`);
  }
  if (instrument.kind === "spot") return instrumentId(KIND_SPOT, base.address, quote.address);
  if (instrument.kind === "option" && instrument.strike != null && instrument.expiry) {
    const expiry = Date.parse(instrument.expiry);
    if (Number.isNaN(expiry)) throw new NotSignable(`${instrument.symbol}: expiry ${instrument.expiry} unreadable`);
    return instrumentId(
      KIND_OPTION,
      base.address,
      quote.address,
      tokenUnits(instrument.strike, quote.decimals, "strike"),
      BigInt(Math.floor(expiry / 1000)),
      instrument.right === "call",
    );
  }
  throw new NotSignable(`${instrument.symbol} does not trade on chain (only spot pairs and options settle)`);
}

function isBuy(side) {
  if (side !== "buy" && side !== "sell") throw new NotSignable(`side "${side}" is neither buy nor sell`);
  return side === "buy";
}

export function orderMessage(instrument, tokens, { side, quantity, price, nonce, deadline }) {
  return {
    instrument: onchainId(instrument, tokens),
    is_buy: isBuy(side),
    amount: tokenUnits(quantity, instrument.base_decimals, "quantity"),
    limit_price: tokenUnits(price, instrument.quote_decimals, "price"),
    nonce: BigInt(nonce),
    deadline: BigInt(deadline),
  };
}

// legs: [{instrument (catalogue entry), side, ratio}] as written for a buyer; a sell flips them
// and the net price.
export function strategyMessage(legs, tokens, { side, quantity, price, nonce, deadline }) {
  if (legs.length < 2) throw new NotSignable("a strategy has two legs or more");
  const first = legs[0].instrument;
  const flip = !isBuy(side);
  const net = tokenUnits(price, first.quote_decimals, "price");
  return {
    legs: legs.map((leg) => ({
      instrument: onchainId(leg.instrument, tokens),
      is_buy: isBuy(leg.side) !== flip,
      ratio: BigInt(leg.ratio ?? 1),
    })),
    amount: tokenUnits(quantity, first.base_decimals, "quantity"),
    limit_net_price: flip ? -net : net,
    nonce: BigInt(nonce),
    deadline: BigInt(deadline),
  };
}

function domain(chainId, wallet) {
  return { name: "Isthmus", version: "1", chainId, verifyingContract: getAddress(wallet) };
}

// The eth_signTypedData_v4 payload: integers as decimal strings, bytes32 as 0x-hex (the shape
// the gateway answers, so that the two compare field by field).
export function typedData(message, chainId, wallet) {
  if (!message.legs) {
    return {
      types: { EIP712Domain: DOMAIN_FIELDS, Order: ORDER_FIELDS },
      primaryType: "Order",
      domain: domain(chainId, wallet),
      message: {
        instrument: message.instrument,
        is_buy: message.is_buy,
        amount: String(message.amount),
        limit_price: String(message.limit_price),
        nonce: String(message.nonce),
        deadline: String(message.deadline),
      },
    };
  }
  return {
    types: { EIP712Domain: DOMAIN_FIELDS, Strategy: STRATEGY_FIELDS, Leg: LEG_FIELDS },
    primaryType: "Strategy",
    domain: domain(chainId, wallet),
    message: {
      legs: message.legs.map((leg) => ({ instrument: leg.instrument, is_buy: leg.is_buy, ratio: String(leg.ratio) })),
      amount: String(message.amount),
      limit_net_price: String(message.limit_net_price),
      nonce: String(message.nonce),
      deadline: String(message.deadline),
    },
  };
}

// Typed data compared by meaning: numbers and numeric strings alike, hex case-blind.
function canonical(value) {
  if (typeof value === "boolean") return value;
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  if (typeof value === "string") return /^0x/i.test(value) ? value.toLowerCase() : value;
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, canonical(v)]));
  }
  return value;
}

// Where `remote` (what the gateway asks to sign) differs from `local`; empty: the same.
export function typedDataDifferences(local, remote) {
  const found = [];
  const isObject = (x) => x && typeof x === "object" && !Array.isArray(x);
  function walk(x, y, where) {
    if (isObject(x) && isObject(y)) {
      for (const key of [...new Set([...Object.keys(x), ...Object.keys(y)])].sort()) {
        walk(x[key], y[key], where ? `${where}.${key}` : key);
      }
    } else if (Array.isArray(x) && Array.isArray(y) && x.length === y.length) {
      x.forEach((p, i) => walk(p, y[i], `${where}[${i}]`));
    } else if (JSON.stringify(x) !== JSON.stringify(y)) {
      found.push(`${where}: expected ${JSON.stringify(x)}, the gateway sent ${JSON.stringify(y)}`);
    }
  }
  walk(canonical(local), canonical(remote), "");
  return found;
}

// ------------------------------------------------------------------ nonces

// The next nonce of each (chain, wallet) in localStorage, handed out under a Web Lock so that
// two tabs of the same trader never hand out the same one. The first use (and every use: a
// cleared storage or another device must not reuse a nonce) starts at least at the wallet's
// on-chain floor (min_nonce) and above every nonce the wallet's orders hold at the gateway.
const NONCES = "isthmus.nonces";

function readNonces() {
  try {
    return JSON.parse(localStorage.getItem(NONCES) || "{}") || {};
  } catch {
    return {};
  }
}

async function exclusively(task) {
  if (typeof navigator !== "undefined" && navigator.locks) return navigator.locks.request(NONCES, task);
  return task();
}

export async function takeNonce(chainId, wallet, floor) {
  const key = `${chainId}:${getAddress(wallet)}`;
  const lowest = BigInt(await floor());
  return exclusively(() => {
    const stored = readNonces();
    let nonce = stored[key] ? BigInt(stored[key]) : 1n;
    if (nonce < lowest) nonce = lowest;
    if (nonce < 1n) nonce = 1n;
    stored[key] = String(nonce + 1n);
    localStorage.setItem(NONCES, JSON.stringify(stored));
    return nonce;
  });
}

export async function nonceFloor(api, wallet) {
  // the gateway's next free nonce of the wallet: above every nonce its orders there hold
  // (a nonce is used once: it refuses a second order under one) and the wallet's min_nonce
  try {
    const answer = await api.get(`/v1/accounts/${wallet}/next-nonce`);
    return BigInt(answer.next_nonce);
  } catch {
    /* an older gateway, or none reachable: the chain's floor at least */
  }
  let floor = 1n;
  try {
    const onchain = await publicClient().readContract({ address: wallet, abi: MARGIN_WALLET_ABI, functionName: "min_nonce" });
    if (onchain > floor) floor = onchain;
  } catch {
    /* no node through the wallet either: the local count stands */
  }
  return floor;
}

// ------------------------------------------------------------------ signing

export async function checkRegistered(chain, instruments) {
  for (const instrument of instruments) {
    const id = onchainId(instrument, chain.tokens);
    const registered = await publicClient().readContract({
      address: chain.settlement,
      abi: SETTLEMENT_ABI,
      functionName: "registered",
      args: [id],
    });
    if (!registered) {
      throw new NotSignable(`${instrument.symbol}: its id ${id} is not registered on the Settlement contract ${chain.settlement}: nothing would settle it`);
    }
  }
}

// The JSON payload as viem's signTypedData takes it: integers as BigInt, no EIP712Domain.
function forViem(data) {
  const ints = new Set(["amount", "limit_price", "nonce", "deadline", "ratio", "limit_net_price"]);
  const convert = (obj) =>
    Object.fromEntries(
      Object.entries(obj).map(([k, v]) => [k, Array.isArray(v) ? v.map(convert) : ints.has(k) ? BigInt(v) : v]),
    );
  const { EIP712Domain, ...types } = data.types;
  return { domain: { ...data.domain, chainId: BigInt(data.domain.chainId) }, types, primaryType: data.primaryType, message: convert(data.message) };
}

// 65 bytes r || s || v with v in {27, 28} and s in the lower half (what the wallet accepts).
function normalized(signature) {
  if ((signature.length - 2) / 2 !== 65) return signature;
  const r = sliceHex(signature, 0, 32);
  let s = hexToBigInt(sliceHex(signature, 32, 64));
  let v = Number(hexToBigInt(sliceHex(signature, 64, 65)));
  if (v < 27) v += 27;
  if (s > SECP256K1_N / 2n) {
    s = SECP256K1_N - s;
    v = 55 - v;
  }
  return r + s.toString(16).padStart(64, "0") + v.toString(16).padStart(2, "0");
}

export class SigningRefused extends Error {
  constructor(message, differences = []) {
    super(message);
    this.differences = differences;
  }
}

// Build, compare, sign: the body of POST /v1/orders (kind "order") or /v1/strategies
// (kind "strategy") with its signature. `instruments` maps symbols to catalogue entries.
// `progress(text)` says which step it is on.
export async function signBody({ api, chain, owner, wallet, kind, body, instruments, progress = () => {} }) {
  progress("Choosing a nonce…");
  const nonce = await takeNonce(chain.chain_id, wallet, () => nonceFloor(api, wallet));
  const deadline = body.expires_at
    ? Math.floor(Date.parse(body.expires_at) / 1000)
    : Math.floor(Date.now() / 1000) + SIGNATURE_LIFETIME;
  let message;
  let used;
  if (kind === "order") {
    const instrument = instruments[body.instrument];
    if (!instrument) throw new NotSignable(`unknown instrument ${body.instrument}`);
    used = [instrument];
    message = orderMessage(instrument, chain.tokens, { side: body.side, quantity: body.quantity, price: body.price, nonce, deadline });
  } else {
    const legs = body.legs.map((leg) => {
      const instrument = instruments[leg.instrument];
      if (!instrument) throw new NotSignable(`unknown instrument ${leg.instrument}`);
      return { instrument, side: leg.side, ratio: leg.ratio ?? 1 };
    });
    used = legs.map((l) => l.instrument);
    message = strategyMessage(legs, chain.tokens, { side: body.side ?? "buy", quantity: body.quantity, price: body.price, nonce, deadline });
  }
  const local = typedData(message, chain.chain_id, wallet);
  progress("Checking the instruments on the Settlement contract…");
  await checkRegistered(chain, used);
  progress("Comparing with what the gateway would have you sign…");
  const remote = await api.post("/v1/orders/typed-data", { [kind]: body, nonce: String(nonce), deadline });
  const differences = typedDataDifferences(local, remote);
  if (differences.length) {
    throw new SigningRefused("the gateway's typed data differs from the order's own: not signed", differences);
  }
  progress("Waiting for your wallet's signature…");
  const request = forViem(local);
  const raw = await walletClient(owner).signTypedData({ account: owner, ...request });
  const signature = normalized(raw);
  const signer = await recoverTypedDataAddress({ ...request, signature });
  if (getAddress(signer) !== getAddress(owner)) {
    throw new SigningRefused(`the wallet signed with ${signer}, not with the wallet's owner ${owner}`);
  }
  return { body: { ...body, signature: { nonce: String(nonce), deadline, signature } }, typed: local };
}

export function newClientOrderId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return "w-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
