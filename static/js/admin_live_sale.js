// The sale's back-office page keeps its live numbers, chart and report current: every few
// seconds it asks for them again (one cheap JSON answer) while the page is visible.
(function () {
  "use strict";

  const url = document.currentScript.dataset.liveUrl;

  async function refresh() {
    if (document.visibilityState === "visible") {
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.ok) {
          const parts = await response.json();
          for (const [field, html] of Object.entries(parts)) {
            const box = document.querySelector(`.field-${field} .readonly`);
            if (box) box.innerHTML = html;
          }
        }
      } catch (error) {
        // Keep what is shown; the next round asks again.
      }
    }
    setTimeout(refresh, 5000);
  }

  setTimeout(refresh, 5000);
})();
