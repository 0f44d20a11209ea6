// Every call to the users API goes through request(): it picks the region's base URL, adds the ID
// token, refreshes it once on a 401, and turns every status (and a network failure) into either the
// answer or an ApiError whose message says what happened and what the person can do.

const SERVED_REGION_HEADER = "X-Served-Region";

export class ApiError extends Error {
  constructor(kind, message, details = {}) {
    super(message);
    this.kind = kind; // unauthorized, forbidden, not-found, conflict, too-large, throttled, unavailable, network, invalid, server
    this.status = details.status || 0;
    this.retryAfter = details.retryAfter || null;
    this.region = details.region || null;
    this.fields = details.fields || null;
  }
}

function retryAfterSeconds(response) {
  const value = response.headers.get("Retry-After");
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.round(seconds));
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.round((date - Date.now()) / 1000));
}

function errorFor(response, body, region) {
  const status = response.status;
  const serverMessage = (body && body.error && body.error.message) || "";
  const fields = (body && body.error && body.error.fields) || null;
  const retryAfter = retryAfterSeconds(response);
  const details = { status, retryAfter, region, fields };
  const wait = retryAfter !== null ? `${retryAfter} s` : "a moment";
  switch (status) {
    case 400:
    case 422:
      return new ApiError("invalid", `Please check what you entered: ${serverMessage || "the API refused it"}.`, details);
    case 401:
      return new ApiError("unauthorized", "Your session has ended. Sign in again to continue.", details);
    case 403:
      return new ApiError("forbidden", `You are not allowed to do that${serverMessage ? ` (${serverMessage})` : ""}.`, details);
    case 404:
      return new ApiError("not-found", serverMessage ? `Not found: ${serverMessage}.` : "Not found.", details);
    case 409:
      return new ApiError("conflict", `That conflicts with what exists: ${serverMessage || "already taken"}.`, details);
    case 413:
      return new ApiError("too-large", "What you sent is too large for the API. Shorten it and try again.", details);
    case 429:
      return new ApiError("throttled", `Too many requests right now. Wait ${wait} and try again.`, details);
    case 503:
      return new ApiError(
        "unavailable",
        `The ${region} region cannot reach its database. Try again in ${wait}, or pick another region.`,
        details,
      );
    default:
      return new ApiError(
        "server",
        `The ${region} region answered with an error (${status}${serverMessage ? `: ${serverMessage}` : ""}). Try again or pick another region.`,
        details,
      );
  }
}

export function createApi(config, auth, currentRegion) {
  const healthRegions = new Map(); // region -> what its /health named, until the header is everywhere

  async function send(region, method, path, body, query) {
    const base = config.apiUrls[region];
    if (!base) throw new ApiError("invalid", `Unknown region ${region}: pick one of ${config.regions.join(", ")}.`);
    const url = new URL(base.replace(/\/+$/, "") + path);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== null && value !== undefined) url.searchParams.set(name, value);
    }
    const headers = { Accept: "application/json" };
    const token = auth.enabled ? auth.idToken() : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    try {
      return await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch {
      throw new ApiError(
        "network",
        `The ${region} region is not answering (network error at ${url.origin}). It may be down: pick another region and try again.`,
        { region },
      );
    }
  }

  async function servedRegion(response, region) {
    const header = response.headers.get(SERVED_REGION_HEADER);
    if (header) return header;
    if (!healthRegions.has(region)) {
      try {
        const health = await fetch(config.apiUrls[region].replace(/\/+$/, "") + "/health", { cache: "no-store" });
        const body = await health.json();
        healthRegions.set(region, body.region || region);
      } catch {
        return region;
      }
    }
    return healthRegions.get(region);
  }

  async function request(method, path, { body, query } = {}) {
    const region = currentRegion();
    let response = await send(region, method, path, body, query);
    if (response.status === 401 && auth.enabled && (await auth.refresh())) {
      response = await send(region, method, path, body, query);
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    const served = await servedRegion(response, region);
    if (!response.ok) {
      const error = errorFor(response, data, region);
      error.servedRegion = served;
      throw error;
    }
    return { status: response.status, data, servedRegion: served };
  }

  return {
    request,
    me: () => request("GET", "/users/me"),
    createMe: (user) => request("POST", "/users/me", { body: user }),
    updateMe: (patch) => request("PATCH", "/users/me", { body: patch }),
    deleteMe: () => request("DELETE", "/users/me"),
    listUsers: (limit, cursor) => request("GET", "/users", { query: { limit, cursor } }),
  };
}
