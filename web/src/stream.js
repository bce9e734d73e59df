// /v1/stream for the page: one WebSocket per session, subscribed to the caller's accounts and
// the books on screen. A lost connection reconnects with backoff, re-subscribes, and says so
// through `status` ("connecting", "live", "down") so the page can show it while it is down.

export class LiveStream {
  constructor(token, { accounts = [], books = [] } = {}) {
    this.token = token;
    this.accounts = accounts;
    this.books = books;
    this.status = "connecting";
    this.listeners = new Set();
    this.statusListeners = new Set();
    this.failures = 0;
    this.closed = false;
    this.socket = null;
    this.timer = null;
    this.connect();
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const token = this.token ? `?token=${encodeURIComponent(this.token)}` : "";
    return `${scheme}//${location.host}/v1/stream${token}`;
  }

  connect() {
    if (this.closed) return;
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.onopen = () => {
      this.failures = 0;
      this.subscribe();
      this.setStatus("live");
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      for (const listener of this.listeners) listener(message);
    };
    socket.onclose = () => {
      if (this.socket !== socket || this.closed) return;
      this.setStatus("down");
      this.failures += 1;
      const delay = Math.min(5000, 250 * 2 ** Math.min(this.failures, 5));
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  subscribe() {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ op: "subscribe", accounts: this.accounts, books: this.books }));
    }
  }

  setInterest({ accounts, books }) {
    if (accounts) this.accounts = accounts;
    if (books) this.books = books;
    this.subscribe();
  }

  setStatus(status) {
    this.status = status;
    for (const listener of this.statusListeners) listener(status);
  }

  onMessage(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onStatus(listener) {
    this.statusListeners.add(listener);
    listener(this.status);
    return () => this.statusListeners.delete(listener);
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close();
  }
}
