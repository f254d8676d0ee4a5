// The shop's clock for page scripts: the server's time (sent with every page as the body's
// data-server-now, corrected by later answers) and durations as a shopper reads them. Every
// element with data-count-to counts down to that moment: "<data-prefix> 1 min 05 s", then
// shows its data-done text.
window.shopClock = (function () {
  "use strict";

  const served = Number(document.body.dataset.serverNow);
  let offset = served ? served - Date.now() : 0; // error pages carry no server time
  const READINGS_KEPT = 8;
  const readings = served ? [offset] : [];


  function duration(ms) {
    const total = Math.max(0, Math.ceil(ms / 1000));
    const days = Math.floor(total / 86400);
    const hours = Math.floor((total % 86400) / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const seconds = total % 60;
    const two = (n) => String(n).padStart(2, "0");
    if (days > 0) return `${days} d ${hours} h ${two(minutes)} min`;
    if (hours > 0) return `${hours} h ${two(minutes)} min ${two(seconds)} s`;
    if (minutes > 0) return `${minutes} min ${two(seconds)} s`;
    return `${seconds} s`;
  }

  const clock = {
    now: () => Date.now() + offset,
    // A server time read from an answer sent at `sentAt` and received at `receivedAt` (our clock).
    // An answer a proxy held for a moment carries an older time, never a newer one: the clock
    // goes by the newest of the last few readings.
    correct(serverMs, sentAt, receivedAt) {
      readings.push(serverMs - (sentAt + receivedAt) / 2);
      if (readings.length > READINGS_KEPT) readings.shift();
      offset = Math.max(...readings);
    },
    duration,
  };

  function tick() {
    for (const element of document.querySelectorAll("[data-count-to]")) {
      const left = Date.parse(element.dataset.countTo) - clock.now();
      element.textContent = left > 0 ? `${element.dataset.prefix} ${duration(left)}` : element.dataset.done;
    }
  }
  tick();
  setInterval(tick, 1000);
  return clock;
})();
