// A POST to the shop's API from a page whose shopper is signed in (the session's cookie and the
// CSRF token): resolves to {response, body}, the body {} when the answer carries no JSON; rejects
// when the request never got an answer. Used by the sale page's scripts.
window.shopPost = async function (url, csrfToken, payload, headers) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken, ...(headers || {}) },
    body: JSON.stringify(payload),
  });
  let body = {};
  try {
    body = await response.json();
  } catch (error) {
    // An answer without JSON is judged by its status alone.
  }
  return { response, body };
};
