// The purchase pass of a sale that requires one (purchase/passes.py): asked for as soon as the
// server issues it, after solving the sale's proof of work if it has one (ALTCHA's challenge:
// the number whose SHA-256 with the salt is the challenge), renewed before it expires or when a
// purchase finds it spent. The sale page's script reads `token()` for each purchase.
window.shopPurchasePass = function (url, csrfToken, clock, onChange) {
  "use strict";

  let token = null;
  let expiresAt = 0;
  let solution = null;
  let timer = null;

  function hex(bytes) {
    return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function solve(challenge) {
    const encoder = new TextEncoder();
    for (let number = 0; number <= challenge.maxNumber; number++) {
      const digest = await crypto.subtle.digest("SHA-256", encoder.encode(challenge.salt + number));
      if (hex(digest) === challenge.challenge) {
        const { algorithm, salt, signature } = challenge;
        return btoa(JSON.stringify({ algorithm, challenge: challenge.challenge, number, salt, signature }));
      }
    }
    return null;
  }

  function later(ms) {
    clearTimeout(timer);
    timer = setTimeout(ask, Math.max(0, ms));
  }

  async function ask() {
    let response;
    let body;
    try {
      ({ response, body } = await window.shopPost(url, csrfToken(), solution ? { challenge: solution } : {}));
    } catch (error) {
      later(2000);
      return;
    }
    if (response.status === 200) {
      token = body.pass;
      expiresAt = Date.parse(body.expires_at);
      onChange("ready");
      later(expiresAt - clock.now() - 15_000); // renewed a little before it expires
    } else if (body.code === "challenge_failed" && body.challenge) {
      onChange("solving");
      solution = await solve(body.challenge);
      later(0);
    } else if (body.code === "too_early") {
      onChange("waiting");
      later(Date.parse(body.issued_from) - clock.now() + 200);
    } else if (response.status === 429) {
      later((Number(response.headers.get("Retry-After")) || 5) * 1000);
    } else {
      onChange("closed"); // ended, or no pass needed after all: nothing more to ask
    }
  }

  ask();
  return {
    token: () => (token && expiresAt > clock.now() ? token : null),
    // A purchase found the pass spent or expired: get another.
    renew() {
      token = null;
      onChange("renewing");
      later(0);
    },
  };
};
