// The purchase page while the purchase is in line: asks for its result with a growing pause and
// shows the page again once it is known (instead of reloading itself every second).
(function () {
  "use strict";

  const pending = document.getElementById("purchase-pending");
  if (!pending) return;

  async function ask(delay) {
    try {
      const response = await fetch(pending.dataset.resultUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok && (await response.json()).status !== "pending") {
        window.location.reload();
        return;
      }
    } catch (error) {
      // Ask again after the pause.
    }
    setTimeout(() => ask(Math.min(delay * 1.5, 3000)), delay);
  }

  setTimeout(() => ask(300), 300);
})();
