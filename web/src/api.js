// The gateway's HTTP API, as the page calls it: same origin, a bearer token (the trader's
// Sign-In with Ethereum session or the operator's token), every error as the API's own
// structured body ({"error": {"code", "message", "field"}}) turned into an ApiError.

export class ApiError extends Error {
  constructor(status, code, message, field = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export class Api {
  constructor(token = null, base = "") {
    this.token = token;
    this.base = base;
  }

  withToken(token) {
    return new Api(token, this.base);
  }

  async request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(0, "unreachable", `the gateway did not answer: ${err.message}`);
    }
    if (response.status === 204) return null;
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = data && data.error;
      if (error && error.code) {
        throw new ApiError(response.status, error.code, error.message, error.field ?? null);
      }
      throw new ApiError(response.status, `http_${response.status}`, text || response.statusText);
    }
    return data;
  }

  get(path) {
    return this.request("GET", path);
  }
  post(path, body) {
    return this.request("POST", path, body ?? {});
  }
  put(path, body) {
    return this.request("PUT", path, body ?? {});
  }
  patch(path, body) {
    return this.request("PATCH", path, body ?? {});
  }
  delete(path) {
    return this.request("DELETE", path);
  }
}

// A query string from an object, leaving out empty values.
export function query(params) {
  const entries = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  if (!entries.length) return "";
  return "?" + new URLSearchParams(entries.map(([k, v]) => [k, String(v)])).toString();
}
