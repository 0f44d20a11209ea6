// Sign-in with the OAuth 2.0 authorization-code flow and PKCE (RFC 7636, S256), against the endpoints
// of config.authDomain: Cognito managed login when deployed, the local issuer under `make dev`.
// A refresh the domain cannot answer is asked of each region's Cognito (config.identityEndpoints,
// primary first): with the pool replicated, the secondary's still renews tokens in a primary outage.
// Tokens live in sessionStorage: one tab's session, gone when the tab closes, never in a cookie.

const TOKENS_KEY = "users.tokens";
const PENDING_KEY = "users.pkce";
const ADMINS_GROUP = "admins";

function base64url(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(byteCount) {
  return base64url(crypto.getRandomValues(new Uint8Array(byteCount)));
}

// RFC 7636 section 4.2: code_challenge = BASE64URL(SHA256(ASCII(code_verifier))).
export async function s256(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

// The claims of a JWT, unverified: only for showing who is signed in (the API verifies the token).
export function decodeClaims(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      Array.from(atob(payload), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""),
    );
    return JSON.parse(json);
  } catch {
    return null;
  }
}

// `unavailable`: the service did not answer or failed (5xx), so another region may; otherwise it refused.
export class SignInError extends Error {
  constructor(message, unavailable = false) {
    super(message);
    this.unavailable = unavailable;
  }
}

async function post(url, headers, body) {
  try {
    return await fetch(url, { method: "POST", headers, body });
  } catch {
    throw new SignInError(`The sign-in service at ${new URL(url).origin} did not answer; try again.`, true);
  }
}

async function postForm(url, fields) {
  const headers = { "Content-Type": "application/x-www-form-urlencoded" };
  const response = await post(url, headers, new URLSearchParams(fields));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const why = body.error_description || body.error || `status ${response.status}`;
    throw new SignInError(`Sign-in failed (${why}). Sign in again.`, response.status >= 500);
  }
  return body;
}

// One call of Cognito's own API at a regional endpoint (JSON 1.1, unsigned: the refresh token is the proof).
async function callCognito(endpoint, operation, payload) {
  const headers = {
    "Content-Type": "application/x-amz-json-1.1",
    "X-Amz-Target": `AWSCognitoIdentityProviderService.${operation}`,
  };
  const response = await post(endpoint, headers, JSON.stringify(payload));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const why = [body.__type, body.message].filter(Boolean).join(": ") || `status ${response.status}`;
    throw new SignInError(`Cognito refused (${why}).`, response.status >= 500);
  }
  return body.AuthenticationResult || {};
}

export function createAuth(config) {
  const enabled = Boolean(config.authDomain && config.clientId);
  // A base URL; a bare host name (as a Cognito domain is often written) means https on it.
  const authDomain = enabled
    ? (/^https?:\/\//.test(config.authDomain) ? config.authDomain : `https://${config.authDomain}`).replace(/\/+$/, "")
    : "";
  const redirectUri = location.origin + (config.redirectPath || "/callback");
  const identityEndpoints = Object.values(config.identityEndpoints || {});
  const signOutUri = location.origin + "/";

  function load() {
    try {
      return JSON.parse(sessionStorage.getItem(TOKENS_KEY)) || null;
    } catch {
      return null;
    }
  }

  function store(answer, previous) {
    const tokens = {
      idToken: answer.id_token,
      refreshToken: answer.refresh_token || (previous && previous.refreshToken) || null,
    };
    sessionStorage.setItem(TOKENS_KEY, JSON.stringify(tokens));
    return tokens;
  }

  function clear() {
    sessionStorage.removeItem(TOKENS_KEY);
  }

  return {
    enabled,

    // Send the browser to the sign-in page; it comes back to redirectPath with a code.
    async signIn(returnTo = location.hash) {
      const verifier = randomString(48); // 64 characters, within RFC 7636's 43-128
      const state = randomString(24);
      sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier, state, returnTo }));
      const query = new URLSearchParams({
        response_type: "code",
        client_id: config.clientId,
        redirect_uri: redirectUri,
        scope: "openid email profile",
        state,
        code_challenge: await s256(verifier),
        code_challenge_method: "S256",
      });
      location.assign(`${authDomain}/oauth2/authorize?${query}`);
    },

    isCallback(url = new URL(location.href)) {
      return enabled && url.pathname === (config.redirectPath || "/callback");
    },

    // The redirect back: check the state, trade the code and its verifier for tokens.
    // Returns the hash to show next.
    async completeSignIn(url = new URL(location.href)) {
      const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || "null");
      sessionStorage.removeItem(PENDING_KEY);
      const error = url.searchParams.get("error");
      if (error) {
        throw new SignInError(`Sign-in was not completed (${url.searchParams.get("error_description") || error}).`);
      }
      if (!pending || url.searchParams.get("state") !== pending.state) {
        throw new SignInError("This sign-in answer does not belong to this tab (state mismatch). Sign in again.");
      }
      const answer = await postForm(`${authDomain}/oauth2/token`, {
        grant_type: "authorization_code",
        client_id: config.clientId,
        code: url.searchParams.get("code") || "",
        redirect_uri: redirectUri,
        code_verifier: pending.verifier,
      });
      store(answer, null);
      return pending.returnTo || "#/profile";
    },

    idToken() {
      const tokens = load();
      return tokens ? tokens.idToken : null;
    },

    // Who is signed in, from the ID token's claims (display only).
    person() {
      const token = this.idToken();
      const claims = token && decodeClaims(token);
      if (!claims) return null;
      const groups = claims["cognito:groups"] || [];
      return {
        username: claims["cognito:username"] || claims.sub,
        email: claims.email || "",
        isAdmin: Array.isArray(groups) ? groups.includes(ADMINS_GROUP) : false,
      };
    },

    // A new ID token from the refresh token; false (and signed out) when there is none or it is refused.
    // The domain first; when it is unavailable, each region's Cognito in turn (GetTokensFromRefreshToken,
    // which rotates the refresh token as the token endpoint does).
    async refresh() {
      const tokens = load();
      if (!tokens || !tokens.refreshToken) {
        clear();
        return false;
      }
      try {
        const answer = await postForm(`${authDomain}/oauth2/token`, {
          grant_type: "refresh_token",
          client_id: config.clientId,
          refresh_token: tokens.refreshToken,
        });
        store(answer, tokens);
        return true;
      } catch (error) {
        if (!error.unavailable) {
          clear();
          return false;
        }
      }
      for (const endpoint of identityEndpoints) {
        try {
          const result = await callCognito(endpoint, "GetTokensFromRefreshToken", {
            ClientId: config.clientId,
            RefreshToken: tokens.refreshToken,
          });
          store({ id_token: result.IdToken, refresh_token: result.RefreshToken }, tokens);
          return true;
        } catch (error) {
          if (!error.unavailable) break;
        }
      }
      clear();
      return false;
    },

    forget: clear,

    // Revoke the refresh token, forget the tokens, end the managed-login session.
    async signOut() {
      const tokens = load();
      clear();
      if (tokens && tokens.refreshToken) {
        await postForm(`${authDomain}/oauth2/revoke`, {
          token: tokens.refreshToken,
          client_id: config.clientId,
        }).catch(() => {});
      }
      const query = new URLSearchParams({ client_id: config.clientId, logout_uri: signOutUri });
      location.assign(`${authDomain}/logout?${query}`);
    },
  };
}
